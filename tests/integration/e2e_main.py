"""Runs one test module and writes JUnit XML to $XML_OUTPUT_FILE so Bazel counts each case."""
import os
import sys
import time
import unittest
import xml.etree.ElementTree as ET


class JUnitResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []
        self._start = 0.0

    def startTest(self, test):
        self._start = time.time()
        super().startTest(test)

    def _add(self, test, kind, detail=""):
        self.cases.append((test.id(), time.time() - self._start, kind, detail))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._add(test, "ok")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._add(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._add(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._add(test, "skipped", reason)


def main():
    module = sys.argv[1]
    suite = unittest.defaultTestLoader.loadTestsFromName(module)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=JUnitResult)
    result = runner.run(suite)
    out = os.environ.get("XML_OUTPUT_FILE")
    if out:
        root = ET.Element("testsuites")
        ts = ET.SubElement(root, "testsuite", name=module, tests=str(len(result.cases)))
        for name, secs, kind, detail in result.cases:
            tc = ET.SubElement(ts, "testcase", name=name, time=f"{secs:.3f}")
            if kind in ("failure", "error"):
                ET.SubElement(tc, kind, message=detail.splitlines()[-1] if detail else "").text = detail
            elif kind == "skipped":
                ET.SubElement(tc, "skipped", message=detail)
        ET.ElementTree(root).write(out, encoding="unicode")
    sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)


if __name__ == "__main__":
    main()
