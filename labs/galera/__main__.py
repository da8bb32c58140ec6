import sys

from labs.galera.cli import main

sys.exit(main())
