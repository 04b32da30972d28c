"""Compares the interop programs' results with expected-failures.txt, strictly:

- a case that fails must be listed (by a glob over case ids) with the defect it shows;
- a listed case that passes is a failure too: the fix has landed, so the entry must go;
- an entry that matches no case is stale, and a program that wrote no results failed;
- an entry written `~PATTERN` is a race the defect causes (the outcome depends on timing):
  either outcome is accepted and shown, so such entries must be removed by hand with the fix.
`n/a` cases (the client library cannot do them) are reported with their reason.

Usage: check.py RESULTS_DIR PROGRAM... [--table]   (--table prints a Markdown table)
"""

import fnmatch
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED = os.path.join(HERE, "..", "expected-failures.txt")


def load_expected():
    entries = []
    with open(EXPECTED, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pattern, _, reason = line.partition(" ")
            if not reason.strip():
                sys.exit(f"expected-failures.txt:{n}: an entry needs the defect it shows after the pattern")
            racy = pattern.startswith("~")
            entries.append((pattern.lstrip("~"), reason.strip(), n, racy))
    return entries


def load_results(results_dir, programs):
    cases, problems = [], []
    for program in programs:
        path = os.path.join(results_dir, f"{program}.tsv")
        if not os.path.exists(path):
            problems.append(f"{program}: wrote no results (it crashed before the end; see its output above)")
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    case_id, outcome, detail = (line.rstrip("\n").split("\t") + ["", ""])[:3]
                    cases.append((case_id, outcome, detail))
    return cases, problems


def table(cases):
    """client x case -> outcome, for the report."""
    print("| case | outcome | detail |\n|---|---|---|")
    for case_id, outcome, detail in sorted(cases):
        print(f"| `{case_id}` | {outcome} | {detail.replace('|', '/')} |")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    results_dir, programs = args[0], args[1:]
    expected = load_expected()
    cases, problems = load_results(results_dir, programs)
    if "--table" in sys.argv:
        table(cases)
        return
    seen = {}
    for case_id, _, _ in cases:
        seen[case_id] = seen.get(case_id, 0) + 1
    problems += [f"{c}: recorded {k} times" for c, k in seen.items() if k > 1]

    used = set()
    passed = xfailed = na = 0
    for case_id, outcome, detail in cases:
        match = next((e for e in expected if fnmatch.fnmatchcase(case_id, e[0])), None)
        if outcome == "n/a":
            na += 1
            print(f"n/a    {case_id}: {detail}")
            continue
        if match:
            used.add(match[2])
        if outcome == "pass" and match is None:
            passed += 1
        elif outcome == "pass" and match[3]:
            passed += 1
            print(f"race   {case_id}: passed this time  [{match[1]}]")
        elif outcome == "pass":
            problems.append(f"{case_id}: passes, but expected-failures.txt:{match[2]} lists it ({match[1]}); remove the entry")
        elif match is None:
            problems.append(f"{case_id}: FAILED: {detail}")
        else:
            xfailed += 1
            print(f"xfail  {case_id}: {detail}  [{match[1]}]")
    for pattern, reason, n, _ in expected:
        if n not in used:
            problems.append(f"expected-failures.txt:{n}: {pattern} matches no case that ran ({reason})")

    for p in problems:
        print(f"FAIL   {p}")
    print(f"skipped: {xfailed} expected failures (expected-failures.txt), {na} cases the client library cannot do (n/a)")
    print(f"interop: {passed} passed, {len(problems)} failed, {xfailed + na} skipped")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
