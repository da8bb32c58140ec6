# Loyalty Card: `make run` serves the demo on SQLite; `make test` installs what the
# tests need and runs them all. See README.md.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export PYTHONPATH := $(CURDIR)

.PHONY: run venv dev-venv test test-fast mutate lint format lab clean translations

$(BIN)/activate: requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(BIN)/activate

venv: $(BIN)/activate

# Test and measurement tools (pytest, Playwright, pyinstrument...) on top of the runtime.
$(VENV)/.dev-installed: $(BIN)/activate requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

dev-venv: $(VENV)/.dev-installed

run: venv  ## demo on SQLite at http://127.0.0.1:8000 (demo@example.com / demo-password-1)
	LOYALTY_ENV=demo $(BIN)/flask --app webapp db upgrade
	LOYALTY_ENV=demo $(BIN)/flask --app webapp demo seed
	LOYALTY_ENV=demo $(BIN)/gunicorn --bind $(HOST):$(PORT) --workers 2 --worker-class gthread \
		--threads 4 --access-logfile - "webapp:create_app()"

test:  ## install everything the tests need (apt, pip, browser, databases) and run them all
	bash scripts/install_test_deps.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest tests e2e
	$(BIN)/python scripts/mutation_gate.py
	LIGHTHOUSE_PERFORMANCE_GATE=0 $(BIN)/python -m scripts.lighthouse_card

test-fast: ## SQLite-only tests, no lab, no browser
	$(BIN)/python -m pytest tests -m "not mariadb and not cluster and not e2e"

# GROUPS=ledger codes ... to run some groups only; FRESH=1 forgets cached verdicts.
mutate: dev-venv  ## mutation testing of the money, rules and auth code (docs/testing.md); reports/mutation/
	nice -n 19 $(BIN)/python scripts/mutation.py $(GROUPS) $(if $(FRESH),--fresh)

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check webapp db labs/galera labs/proc.py tests e2e

format:
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format webapp db labs/galera labs/proc.py tests e2e

# Texts for translators: extract from the code and templates, merge into every language's
# catalog (webapp/translations/<lang>/LC_MESSAGES/messages.po), compile the .mo files.
# The .po and the compiled .mo are both committed, so the app, its tests and the image
# need no build step; tests/test_i18n.py fails when a catalog is behind the code.
TRANSLATIONS := webapp/translations
translations: venv  ## extract texts, update the catalogs, compile them (then translate the .po and run again)
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k N_ -c TRANSLATORS: --no-location \
		--sort-output --project "Loyalty Card" -o $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel -q update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --ignore-obsolete
	$(BIN)/pybabel compile --statistics -d $(TRANSLATIONS)

lab: venv  ## a 3-node Galera cluster on localhost until Ctrl-C
	$(BIN)/python -m labs.galera up

clean:
	rm -rf $(VENV) .venv-deploy instance reports .pytest_cache .ruff_cache

.PHONY: regions
regions: dev-venv  ## three regions in network namespaces over a delayed WAN: latency, partitions, region loss (root, ~5.5 min)
	$(BIN)/python -m pytest tests/cluster/test_regions.py -m regions -v; \
	status=$$?; cat reports/regions/summary.md 2>/dev/null; exit $$status

.PHONY: jmeter bench audit bench-open-cards
bench-open-cards: dev-venv  ## 1,000 open idle cards polling the live balance: server CPU and req/s (docs/live-balance.md)
	$(BIN)/python -m bench.open_cards

jmeter: venv  ## JMeter, three regions at once (lab + 3 apps under gunicorn), ~5 min; reports/jmeter/
	$(BIN)/python -m jmeter.run

bench: dev-venv  ## card page vs hello world and the DB floor, earns vs raw commits (alternating), p99 while a node dies, RSS; reports/bench/ (BENCH_ARGS=--short)
	@command -v wrk >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python -m bench.bench $(BENCH_ARGS)

audit: dev-venv  ## Lighthouse on the signed-in card page + axe-core on every page; reports/audit/
	bash scripts/audit.sh
