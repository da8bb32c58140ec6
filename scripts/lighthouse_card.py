"""Lighthouse on the signed-in card page, as a phone sees it, with the app as deployed.

Serves the demo data (SQLite, in a temporary directory) with the production profile under
gunicorn and deploy/gunicorn.conf.py, signs in through the login form, and runs Lighthouse
(tools/audit, see scripts/audit.sh) through its Node API (scripts/lighthouse_card.mjs) with
the session cookies in Chromium's own cookie jar, so the page's fetch() calls are signed in
too, and Lighthouse's default mobile emulation (Moto G Power, slow 4G, 4x CPU slowdown). Fails
unless performance >= 95, accessibility = 100, best practices = 100 and the whole cold
load transfers less than 60 KB. Reports go to reports/audit/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from labs import stack

ROOT = stack.ROOT
LIGHTHOUSE = ROOT / "tools" / "audit" / "node_modules" / ".bin" / "lighthouse"
RUNNER = ROOT / "scripts" / "lighthouse_card.mjs"
REPORTS = ROOT / "reports" / "audit"
THRESHOLDS = {"performance": 0.95, "accessibility": 1.0, "best-practices": 1.0}
MAX_TRANSFER = 60 * 1024
PORT = int(os.environ.get("AUDIT_PORT", "38125"))
ATTEMPTS = 3


def main() -> int:
    if not LIGHTHOUSE.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "audit.sh"), "install"], check=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="loyalty-audit-") as tmp:
        database = {"LOYALTY_DATABASE_URL": f"sqlite:///{tmp}/audit.db"}
        stack.seed(database["LOYALTY_DATABASE_URL"], customers_per_region=0)
        server = stack.AppServer("audit", PORT, stack.production_env("ie", database),
                                 log_dir=REPORTS / "logs")
        with stack.running([server]):
            cookies = stack.page_cookies(server.url, "demo@example.com")
            report = run_lighthouse(server.url + "/card", cookies)
    return check(report)


def run_lighthouse(url: str, cookies: list[dict]) -> dict:
    target = REPORTS / "card"
    command = ["node", str(RUNNER), url, str(target)]
    env = {**os.environ, "CHROME_PATH": os.environ.get("CHROME_PATH", "/usr/bin/chromium")}
    # Headless Chrome on a busy machine now and then loses the trace (NO_NAVSTART,
    # NO_FCP): that is Lighthouse failing to measure, not the page failing, so try again.
    for attempt in range(1, ATTEMPTS + 1):
        report_file = target.with_suffix(".report.json")
        report_file.unlink(missing_ok=True)  # never read an earlier run's report
        # The cookies go on stdin: a session token has no business on a command line.
        result = subprocess.run(command, check=False, env=env, input=json.dumps(cookies),
                                text=True)
        if result.returncode == 0 and report_file.exists():
            report = json.loads(report_file.read_text())
            if not report.get("runtimeError"):
                return report
        print(f"Lighthouse attempt {attempt} of {ATTEMPTS} did not measure; retrying",
              file=sys.stderr)
    return {"runtimeError": f"no measurement in {ATTEMPTS} attempts"}


def check(report: dict) -> int:
    if report.get("runtimeError"):
        print(f"Lighthouse failed: {report['runtimeError']}", file=sys.stderr)
        return 1
    if not report["finalDisplayedUrl"].endswith("/card"):
        print(f"not signed in: Lighthouse ended on {report['finalDisplayedUrl']}", file=sys.stderr)
        return 1
    audits = report["audits"]
    scores = {name: report["categories"][name]["score"] for name in THRESHOLDS}
    transfer = int(audits["total-byte-weight"]["numericValue"])
    summary = {
        "url": report["finalDisplayedUrl"],
        "scores": {k: round(v * 100) for k, v in scores.items()},
        "transfer_bytes": transfer,
        "requests": [(i["url"], i["totalBytes"])
                     for i in audits["total-byte-weight"]["details"]["items"]],
        "metrics": {m: audits[m]["displayValue"] for m in (
            "first-contentful-paint", "largest-contentful-paint", "total-blocking-time",
            "cumulative-layout-shift", "speed-index")},
        "not_passed": sorted(
            f"{k}: {a.get('displayValue') or a['title']}" for k, a in audits.items()
            if a.get("score") is not None and a["score"] < 1
            and a.get("scoreDisplayMode") in ("binary", "numeric", "metricSavings")),
        "load_average": stack.load_average(),
    }
    (REPORTS / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    # The performance score is a timing: `make audit` holds it to 95, while `make test`
    # (CI, on whatever machine it gets) sets LIGHTHOUSE_PERFORMANCE_GATE=0 and prints it,
    # gating only what is deterministic: accessibility, best practices, bytes.
    gated = {k: v for k, v in scores.items()
             if k != "performance" or os.environ.get("LIGHTHOUSE_PERFORMANCE_GATE", "1") != "0"}
    failures = [f"{k} {round(v * 100)} < {round(THRESHOLDS[k] * 100)}"
                for k, v in gated.items() if v is None or v < THRESHOLDS[k]]
    if transfer >= MAX_TRANSFER:
        failures.append(f"transfer {transfer} B >= {MAX_TRANSFER} B")
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    print(f"OK: report in {REPORTS / 'card.report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
