"""`make mutate`: mutation testing with mutmut, one group of modules at a time.

Each group of ``[tool.mutation.groups]`` in pyproject.toml runs in its own work
directory, ``reports/mutation/work/<group>/``: links to the project's folders and a
pyproject.toml whose ``[tool.mutmut]`` is the project's one narrowed to the group's
modules and test files. mutmut copies that into ``mutants/``, records which of those
tests call each function, and runs every mutant against only those tests, killing the
run at the first failure. The work directory is mutmut's cache: a second run retests
only the functions that changed, and, when the tests changed, the mutants that had
survived. ``--fresh`` starts from scratch.

Prints the score per module and each surviving mutant; mutants that docs/testing.md
lists as equivalent are marked so. Writes reports/mutation/summary.md and
reports/mutation/<group>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports" / "mutation"
WORK = REPORTS / "work"
DOC = ROOT / "docs" / "testing.md"
MUTMUT = Path(sys.executable).with_name("mutmut")
# mutmut's verdicts. mutmut counts a timeout as caught, but its limit is wall-clock time
# and a slow survivor on a busy machine times out too: a timeout is listed, not counted.
DETECTED = {"killed"}
# Not part of the score: mutants mutmut skipped, and ones an interrupted run did not reach.
IGNORED = {"skipped", "caught by type check", "not checked"}


@dataclass
class Mutant:
    name: str
    status: str
    diff: str = ""
    equivalent: str | None = None  # the reason docs/testing.md gives

    @property
    def module(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @property
    def function(self) -> str:
        return self.name.partition("__mutmut_")[0]

    @property
    def change(self) -> tuple[str, str]:
        return change_of(self.diff)


@dataclass
class GroupResult:
    name: str
    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0

    def by_module(self) -> dict[str, list[Mutant]]:
        modules: dict[str, list[Mutant]] = {}
        for mutant in self.mutants:
            modules.setdefault(mutant.module, []).append(mutant)
        return modules


def project_config() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["tool"]


def toml_value(value) -> str:
    """Enough TOML for the values of [tool.mutmut] and [tool.pytest.ini_options]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml_table(name: str, table: dict) -> str:
    lines = [f"[{name}]"] + [f"{key} = {toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def prepare(name: str, mutate: list[str], tests: list[str], *, fresh: bool,
            extra: dict | None = None) -> Path:
    """The group's work directory: links to the project and its own pyproject.toml."""
    tool = project_config()
    work = WORK / name
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    mutmut = dict(tool["mutmut"])
    for folder in [*mutmut["source_paths"], *mutmut["also_copy"], "tests"]:
        link = work / folder
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(ROOT / folder, work))
    mutmut.update(only_mutate=mutate, pytest_add_cli_args_test_selection=tests, **(extra or {}))
    text = toml_table("tool.mutmut", mutmut) + "\n" + toml_table(
        "tool.pytest.ini_options", tool["pytest"]["ini_options"])
    config = work / "pyproject.toml"
    if not config.exists() or config.read_text() != text:
        config.write_text(text)  # mutmut resets its cache when the config changes
    return work


def mutated_files(mutate: list[str]) -> list[Path]:
    return sorted(p for p in (ROOT / "webapp").rglob("*.py")
                  if any(fnmatch(str(p.relative_to(ROOT)), pattern) for pattern in mutate))


def tests_fingerprint(tests: list[str]) -> str:
    """What the mutants are tested with: the test files and the code and templates they
    load. A change means the survivors deserve another try."""
    digest = hashlib.sha256()
    for folder in ("tests", "webapp", "db", "templates"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    digest.update(json.dumps(tests).encode())
    return digest.hexdigest()


def mutmut(work: Path, *args: str, log: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    if log is None:
        return subprocess.run([str(MUTMUT), *args], cwd=work, env=env, text=True,
                              capture_output=True, check=False)
    with log.open("a") as out:
        return subprocess.run([str(MUTMUT), *args], cwd=work, env=env, text=True,
                              stdout=out, stderr=subprocess.STDOUT, check=False)


def verdicts(work: Path) -> dict[str, str]:
    """mutant name -> mutmut's status, from `mutmut results --all true`."""
    if not (work / "mutants").exists():
        return {}
    result = mutmut(work, "results", "--all", "true")
    found = {}
    for line in result.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            found[name] = status
    return found


def diff_of(work: Path, name: str) -> str:
    shown = mutmut(work, "show", name).stdout
    return "\n".join(line for line in shown.splitlines() if not line.startswith("# "))


def change_of(diff: str) -> tuple[str, str]:
    """The removed and added lines of a mutant's diff, whitespace-normalised: what
    docs/testing.md matches, so its list survives mutmut renumbering a function."""
    removed = [line[1:] for line in diff.splitlines()
               if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff.splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    return (" ".join(" ".join(removed).split()), " ".join(" ".join(added).split()))


def function_label(function: str) -> str:
    """``webapp.ledger.services.x_reverse`` -> ``webapp.ledger.services.reverse``, and a
    method's ``…services.xǁ_Attemptsǁis_own`` -> ``…services._Attempts.is_own``."""
    module, _, mangled = function.rpartition(".")
    name = mangled[2:] if mangled.startswith(("x_", "xǁ")) else mangled
    return f"{module}.{name.replace('ǁ', '.')}"


_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`(.*)`\s*→\s*`(.*)`\s*\|\s*(.+?)\s*\|\s*$")


def equivalents() -> dict[tuple[str, str, str], str]:
    """(function, removed, added) -> reason, from the table in docs/testing.md."""
    table = {}
    if DOC.exists():
        for line in DOC.read_text().splitlines():
            match = _ROW.match(line)
            if match:
                function, removed, added, reason = match.groups()
                removed, added = (code.replace("\\|", "|") for code in (removed, added))
                key = (function, " ".join(removed.split()), " ".join(added.split()))
                table[key] = reason
    return table


def run_group(name: str, mutate: list[str], tests: list[str], *, fresh: bool,
              max_children: int, names: list[str] | None = None,
              extra: dict | None = None) -> GroupResult:
    work = prepare(name, mutate, tests, fresh=fresh, extra=extra)
    log = REPORTS / f"{name}.log"
    log.write_text("")
    started = time.monotonic()
    stamp = work / "tests.fingerprint"
    fingerprint = tests_fingerprint(tests)
    if names is None:
        names = []
        started_before = (work / "mutants").exists()
        if started_before and (not stamp.exists() or stamp.read_text() != fingerprint):
            # Tests or the code around the mutants changed (or a run was stopped before
            # its first finish): collect which tests call what again, and give every
            # mutant that was not caught another try. mutmut's own update of that record
            # reruns only the tests that changed, so a new function (or one a changed
            # test now calls) is tried against too few tests and survives falsely.
            (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
            names = [n for n, s in verdicts(work).items() if s not in DETECTED]
            print(f"  tests changed: retesting {len(names)} mutants that were not caught",
                  flush=True)
    result = mutmut(work, "run", "--max-children", str(max_children), *names, log=log)
    if names and result.returncode == 0:
        # The explicit run covers only those names; pick up never-tested mutants too.
        result = mutmut(work, "run", "--max-children", str(max_children), log=log)
    if result.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"mutmut failed for {name} (exit {result.returncode}); "
                         f"see {log.relative_to(ROOT)}\n{tail}")
    stamp.write_text(fingerprint)
    return collect(name, work, time.monotonic() - started)


def collect(name: str, work: Path, seconds: float) -> GroupResult:
    mutants = [Mutant(n, status) for n, status in sorted(verdicts(work).items())]
    for mutant in mutants:
        if mutant.status not in DETECTED | IGNORED:
            mutant.diff = diff_of(work, mutant.name)
    return GroupResult(name, mutants, seconds)


def score(mutants: list[Mutant]) -> tuple[int, int, int, float]:
    counted = [m for m in mutants if m.status not in IGNORED]
    detected = sum(m.status in DETECTED for m in counted)
    equivalent = sum(m.equivalent is not None for m in counted)
    total = len(counted)
    return detected, equivalent, total, (100.0 * detected / total) if total else 100.0


def report(results: list[GroupResult]) -> str:
    lines = ["# Mutation testing", "",
             "| group | module | mutants | caught | equivalent | not caught | not run | score |"
             " score without equivalents |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        for module, mutants in result.by_module().items():
            detected, equivalent, total, percent = score(mutants)
            rest = total - detected - equivalent
            effective = 100.0 * detected / (total - equivalent) if total > equivalent else 100.0
            unrun = sum(m.status == "not checked" for m in mutants)
            lines.append(f"| {result.name} | `{module}` | {total} | {detected} | {equivalent} |"
                         f" {rest} | {unrun} | {percent:.1f} % | {effective:.1f} % |")
    lines.append("")
    for result in results:
        lines.append(f"## {result.name} (last run took {result.seconds:.0f} s)")
        lines.append("")
        # In source order (mutmut's numbers), so a reason that says "as above" follows
        # the row it refers to.
        alive = sorted((m for m in result.mutants if m.status not in DETECTED | IGNORED),
                       key=lambda m: (m.function, int(m.name.rpartition("_")[2])))
        if not alive:
            lines.append("Every mutant was caught.")
        for mutant in alive:
            label = f"equivalent: {mutant.equivalent}" if mutant.equivalent else mutant.status
            removed, added = mutant.change
            lines.append(f"- `{mutant.name}` ({label}): `{removed}` → `{added}`")
        lines.append("")
    return "\n".join(lines)


def save(result: GroupResult) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{result.name}.json").write_text(json.dumps({
        "group": result.name, "seconds": round(result.seconds, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "mutants": [{"name": m.name, "status": m.status, "diff": m.diff}
                    for m in result.mutants],
    }, indent=2))


def saved(groups: list[str]) -> list[GroupResult]:
    """Every group's last run, with docs/testing.md's equivalents as they are now."""
    known = equivalents()
    results = []
    for name in groups:
        path = REPORTS / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        result = GroupResult(name, seconds=data["seconds"])
        for item in data["mutants"]:
            mutant = Mutant(item["name"], item["status"], item["diff"])
            if mutant.status not in DETECTED:
                mutant.equivalent = known.get((function_label(mutant.function), *mutant.change))
            result.mutants.append(mutant)
        results.append(result)
    return results


def main() -> int:
    groups = project_config()["mutation"]["groups"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"default: all of {', '.join(groups)}")
    parser.add_argument("--fresh", action="store_true", help="forget cached verdicts")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--report", action="store_true",
                        help="only rewrite the summary from the last runs (after editing "
                             "docs/testing.md)")
    parser.add_argument("--collect", action="store_true",
                        help="save the verdicts an interrupted run reached, then report")
    args = parser.parse_args()
    unknown = set(args.groups) - set(groups)
    if unknown:
        parser.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    started = time.monotonic()
    if args.collect:
        for name in args.groups or list(groups):
            if (WORK / name / "mutants").exists():
                save(collect(name, WORK / name, 0.0))
    for name in [] if args.report or args.collect else args.groups or list(groups):
        print(f"mutating {name}: {', '.join(groups[name]['mutate'])}", flush=True)
        result = run_group(name, groups[name]["mutate"], groups[name]["tests"],
                           fresh=args.fresh, max_children=args.max_children)
        save(result)
        print(f"  {len(result.mutants)} mutants in {result.seconds:.0f} s", flush=True)
    text = report(saved(list(groups)))
    (REPORTS / "summary.md").write_text(text)
    print(text)
    if not (args.report or args.collect):
        print(f"This run: {time.monotonic() - started:.0f} s. Reports in reports/mutation/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
