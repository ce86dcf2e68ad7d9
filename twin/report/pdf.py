"""PDF from the report's HTML with headless Debian Chromium (never downloaded: the system browser or an error)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"


class BrowserMissingError(RuntimeError):
    """No Chromium to print the PDF with; the message names what is missing and how to go on."""


def chromium_path() -> str:
    """$TWIN_CHROMIUM when set (and only it), else /usr/bin/chromium, else `chromium` on PATH;
    BrowserMissingError when there is none."""
    chosen = os.environ.get("TWIN_CHROMIUM")
    if chosen:
        if Path(chosen).is_file() and os.access(chosen, os.X_OK):
            return chosen
        raise BrowserMissingError(f"cannot write the PDF: $TWIN_CHROMIUM={chosen} is not an executable file. "
                                  "Point it at Debian's Chromium (/usr/bin/chromium) or use --no-pdf for the HTML only.")
    for cand in (CHROMIUM, shutil.which("chromium")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    raise BrowserMissingError(
        f"cannot write the PDF: no Chromium at {CHROMIUM} (nor $TWIN_CHROMIUM, nor `chromium` on PATH). "
        "Install the Debian package (apt-get install chromium) or use --no-pdf for the HTML report only."
    )


def html_to_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 180.0) -> Path:
    """Print `html_path` to `pdf_path` (written to a temporary file beside it, then renamed)."""
    exe = chromium_path()
    html_path = Path(html_path).resolve()
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_pdf = tempfile.mkstemp(prefix=f".{pdf_path.stem}.", suffix=".pdf", dir=pdf_path.parent)
    os.close(fd)
    profile = tempfile.mkdtemp(prefix="twin-report-chromium-")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--no-pdf-header-footer",
           "--virtual-time-budget=15000", "--run-all-compositor-stages-before-draw",
           f"--print-to-pdf={tmp_pdf}", html_path.as_uri()]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        ok = res.returncode == 0 and Path(tmp_pdf).stat().st_size > 0 and Path(tmp_pdf).read_bytes()[:4] == b"%PDF"
        if not ok:
            raise RuntimeError(f"Chromium could not print {html_path} (exit {res.returncode}): {res.stderr.strip()[-800:]}")
        os.chmod(tmp_pdf, 0o644)
        os.replace(tmp_pdf, pdf_path)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"Chromium took longer than {timeout_s:g} s to print {html_path}") from None
    finally:
        if Path(tmp_pdf).exists():
            Path(tmp_pdf).unlink()
        shutil.rmtree(profile, ignore_errors=True)
    return pdf_path


def pdf_pages(pdf_path: Path) -> int:
    """Page count of a PDF written by Chromium (counts page objects, not the page tree)."""
    data = Path(pdf_path).read_bytes()
    return data.count(b"/Type /Page") - data.count(b"/Type /Pages")
