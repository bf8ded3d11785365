#!/usr/bin/env python3
"""Turns a `bazel test` log into the closing line CI reads: `N passed, M failed`.

Counts come from Bazel's own results: the per-target status lines of the test summary, and for
each target the test cases in the test.xml Bazel keeps in bazel-testlogs (a target without a
readable test.xml counts as one case with the target's status).
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

STATUS = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED TO BUILD|FAILED|TIMEOUT|FLAKY|"
                    r"NO STATUS|INCOMPLETE|REMOTE FAILURE|SKIPPED)\b")


def cases(testlogs, target):
    path = os.path.join(testlogs, target[2:].replace(":", "/"), "test.xml")
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    total = failed = skipped = 0
    for case in root.iter("testcase"):
        total += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.get("status") == "notrun" or case.find("skipped") is not None:
            skipped += 1
    if total == 0:
        return None
    return total - failed - skipped, failed


def main():
    log_path, testlogs = sys.argv[1], sys.argv[2]
    passed = failed = 0
    seen = set()
    with open(log_path, errors="replace") as log:
        for line in log:
            m = STATUS.match(line.strip())
            if not m or m.group(1) in seen:
                continue
            target, status = m.group(1), m.group(2)
            seen.add(target)
            counted = cases(testlogs, target) if status in ("PASSED", "FAILED", "FLAKY") else None
            if counted is None:
                ok = status in ("PASSED", "FLAKY")
                passed += 1 if ok else 0
                failed += 0 if ok else 1
            else:
                p, f = counted
                if status == "FAILED" and f == 0:
                    f = 1  # the target failed outside any test case (crash, sanitizer, exit code)
                passed += p
                failed += f
    print(f"{len(seen)} test targets")
    print(f"{passed} passed, {failed} failed")


if __name__ == "__main__":
    main()
