"""PixelMed's DicomSRValidator (Debian pixelmed-apps) kept running in one JVM for every SR of a test process.

``java com.pixelmed.validate.DicomSRValidator FILE`` takes one file and costs about 30 s (JVM start and the
validator's stylesheet compilation, then about 6 s of validation). ``tests/java/SrBatch.java`` builds the
validator once and validates each path it reads on standard input with the same defaults as that command, so the
report text is the same and each further file costs only its validation. The driver is compiled with the JDK's
``javac`` (Debian openjdk-17-jdk-headless, in the Makefile's APT_PACKAGES) into a folder of this process.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

PIXELMED_JAR = Path("/usr/share/java/pixelmed.jar")
#: PixelMed's SR validator on Java 17 needs the XPath limits lifted (see shared NOTES.md).
JAVA_FLAGS = [
    "-Djdk.xml.xpathExprOpLimit=0",
    "-Djdk.xml.xpathTotalOpLimit=0",
    "-Djdk.xml.xpathExprGrpLimit=0",
]
DRIVER_SOURCE = Path(__file__).parent / "java" / "SrBatch.java"
END = "@@HEPAVOL-END@@"
TIMEOUT_S = 300.0


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: run 'make test' (installs the Makefile's APT_PACKAGES) or apt-get install it"
    return path


class PixelMedBatch:
    """One running SrBatch JVM; :meth:`report` gives DicomSRValidator's output for one SR file."""

    def __init__(self) -> None:
        assert PIXELMED_JAR.exists(), "pixelmed.jar missing: apt-get install pixelmed-apps (in APT_PACKAGES)"
        self._folder = Path(tempfile.mkdtemp(prefix="hepavol-pixelmed-"))
        subprocess.run(
            [
                _tool("javac"),
                "--release",
                "17",
                "-cp",
                str(PIXELMED_JAR),
                "-d",
                str(self._folder),
                str(DRIVER_SOURCE),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._stderr = (self._folder / "stderr.txt").open("w")
        classpath = f"{PIXELMED_JAR}:{self._folder}"
        self._proc = subprocess.Popen(
            [_tool("java"), *JAVA_FLAGS, "-cp", classpath, "SrBatch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self._lock = threading.Lock()

    def report(self, path: Path) -> str:
        """The validator's report for ``path`` (an absolute path without a line break)."""
        text = str(Path(path).resolve())
        assert "\n" not in text, text
        with self._lock:
            assert self._proc.poll() is None, f"the PixelMed driver stopped: {self._stderr_text()}"
            assert self._proc.stdin is not None
            assert self._proc.stdout is not None
            self._proc.stdin.write(text + "\n")
            self._proc.stdin.flush()
            watchdog = threading.Timer(TIMEOUT_S, self._proc.kill)
            watchdog.start()
            try:
                lines = []
                for line in self._proc.stdout:
                    if line.rstrip("\n") == END:
                        break
                    lines.append(line)
                else:
                    raise AssertionError(f"the PixelMed driver stopped on {path}: {self._stderr_text()}")
            finally:
                watchdog.cancel()
        return "".join(lines)

    def _stderr_text(self) -> str:
        self._stderr.flush()
        return (self._folder / "stderr.txt").read_text()[-2000:]

    def close(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._stderr.close()
        shutil.rmtree(self._folder, ignore_errors=True)


_BATCH: PixelMedBatch | None = None


def pixelmed_report(path: Path) -> str:
    """Output of PixelMed's DicomSRValidator for an SR file (one JVM per test process, started on first use)."""
    global _BATCH
    if _BATCH is None:
        _BATCH = PixelMedBatch()
        atexit.register(_BATCH.close)
    return _BATCH.report(Path(path))
