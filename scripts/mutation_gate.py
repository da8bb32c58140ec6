"""The mutation gate of `make test`: a fixed list of mutants of the ledger's and the
rulebook's guards must all be caught by the tests chosen for their function.

scripts/mutation_gate.toml lists, per function, the tests that guard it and the mutants
(mutmut's name and the line it changes). The gate runs mutmut from scratch on just those
mutants and tests, in reports/mutation/work/gate/, and fails when one survives and
docs/testing.md does not list it as equivalent.

A mutant is named by its number within the function, which shifts when the function is
edited; the recorded change catches that. A mutant whose number now points at another
change is looked up by its change among the function's mutants and run again; the gate
then says to refresh the list with ``--update``. A change that no longer exists at all
fails the gate: the guard was rewritten and the list needs a new mutant.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import tomllib
from pathlib import Path

from mutation import (
    DETECTED,
    REPORTS,
    ROOT,
    change_of,
    diff_of,
    equivalents,
    function_label,
    mutmut,
    prepare,
    verdicts,
)

GATE = Path(__file__).with_name("mutation_gate.toml")


def load() -> list[dict]:
    with GATE.open("rb") as file:
        return tomllib.load(file)["function"]


def missing_tests(tests: list[str]) -> list[str]:
    """Listed tests that are not there (renamed or moved): pytest would refuse them all."""
    missing = []
    for test in tests:
        path, _, function = test.partition("::")
        source = ROOT / path
        if not source.exists() or (function and not re.search(
                rf"^def {re.escape(function)}\(", source.read_text(), re.MULTILINE)):
            missing.append(test)
    return missing


def normal(text: str) -> str:
    return " ".join(text.split())


def expected_changes(functions: list[dict]) -> dict[str, tuple[str, str, str]]:
    """mutant name -> (function label, removed line, added line) as recorded."""
    wanted = {}
    for function in functions:
        module, _, name = function["name"].rpartition(".")
        for mutant in function["mutants"]:
            full = f"{module}.x_{name}__mutmut_{mutant['number']}"
            wanted[full] = (function["name"], normal(mutant["from"]), normal(mutant["to"]))
    return wanted


def run(work: Path, names: list[str], log: Path) -> dict[str, str]:
    result = mutmut(work, "run", "--max-children", "2", *names, log=log)
    if result.returncode != 0:
        raise SystemExit(f"mutmut failed (exit {result.returncode}); see "
                         f"{log.relative_to(ROOT)}\n{log.read_text()[-3000:]}")
    found = verdicts(work)
    return {name: found.get(name, "missing") for name in names}


def relocate(work: Path, name: str, change: tuple[str, str, str],
             everything: dict[str, str]) -> str | None:
    """The function's mutant that makes the recorded change, nearest the old number first."""
    prefix, _, number = name.rpartition("__mutmut_")
    candidates = sorted((n for n in everything if n.startswith(prefix + "__mutmut_")),
                        key=lambda n: abs(int(n.rpartition("_")[2]) - int(number)))
    for candidate in candidates:
        if change_of(diff_of(work, candidate)) == change[1:]:
            return candidate
    return None


def update_file(moves: dict[str, str]) -> None:
    """Rewrites the numbers of moved mutants in mutation_gate.toml, nothing else."""
    text = GATE.read_text()
    for old, new in moves.items():
        function = function_label(old.partition("__mutmut_")[0])
        old_number, new_number = old.rpartition("_")[2], new.rpartition("_")[2]
        # Each mutant is one inline table under its function's [[function]] table.
        start = text.index(f'name = "{function}"')
        end = text.find("[[function]]", start)
        end = len(text) if end == -1 else end
        block = re.sub(rf"\bnumber = {old_number}\b", f"number = {new_number}<moved>",
                       text[start:end], count=1)
        text = text[:start] + block + text[end:]
    GATE.write_text(text.replace("<moved>", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true",
                        help="rewrite the numbers of mutants that moved in mutation_gate.toml")
    args = parser.parse_args()
    started = time.monotonic()
    functions = load()
    tests = sorted({test for function in functions for test in function["tests"]})
    if missing := missing_tests(tests):
        print(f"{GATE.relative_to(ROOT)} names tests that do not exist: {', '.join(missing)}")
        return 1
    modules = sorted({f["name"].rpartition(".")[0] for f in functions})
    mutate = [module.replace(".", "/") + ".py" for module in modules]
    work = prepare("gate", mutate, tests, fresh=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    log = REPORTS / "gate.log"
    log.write_text("")
    wanted = expected_changes(functions)
    print(f"mutation gate: {len(wanted)} mutants of {len(functions)} functions, "
          f"{len(tests)} test selections", flush=True)
    status = run(work, list(wanted), log)
    everything = verdicts(work)
    moves: dict[str, str] = {}
    lost: list[str] = []
    for name, change in wanted.items():
        if status[name] != "missing" and change_of(diff_of(work, name)) == change[1:]:
            continue
        new = relocate(work, name, change, everything)
        if new is None:
            lost.append(f"{name}: `{change[1]}` → `{change[2]}` no longer exists")
        else:
            moves[name] = new
    if moves:
        status.update(run(work, list(moves.values()), log))
        for old, new in moves.items():
            status.pop(old, None)
            print(f"  moved: {old} is now {new}")
        if args.update:
            update_file(moves)
            print(f"  {GATE.relative_to(ROOT)} updated")
        else:
            print("  refresh the numbers: python scripts/mutation_gate.py --update")
    known = equivalents()
    changes = {moves.get(name, name): change for name, change in wanted.items()}
    failed = list(lost)
    caught = 0
    for name, verdict in sorted(status.items()):
        if verdict in DETECTED:
            caught += 1
            continue
        function, removed, added = changes[name]
        reason = known.get((function, removed, added))
        line = f"{name} ({verdict}): `{removed}` → `{added}`"
        if reason:
            print(f"  equivalent: {line}: {reason}")
        else:
            failed.append(line)
    seconds = time.monotonic() - started
    print(f"mutation gate: {caught}/{len(status)} caught in {seconds:.0f} s")
    if failed:
        print("Not caught (add a test, or list it in docs/testing.md if it is equivalent):")
        for line in failed:
            print(f"  {line}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
