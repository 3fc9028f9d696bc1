"""Regenerate ``docs/app_search.png``: the app's text search over the held-out real takes, with the demo model.

    python docs/screenshot_app.py [--model runs/demo/best] [--query "a person kicks"]

Needs the ``app`` and ``browser-test`` extras and Debian's ``chromium chromium-driver``. The default query asks for an
action the held-out dataset-2 takes do not hold, so the page shows its "No confident match" answer.
"""

from __future__ import annotations

import argparse
import shutil
import socket
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from motionpatch_training.app import build_interface, create_app

DOCS = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/demo/best")
    parser.add_argument("--library", default="embedded:ds2")
    parser.add_argument("--query", default="a person kicks")
    parser.add_argument("--output", default=str(DOCS / "app_search.png"))
    args = parser.parse_args()
    app = create_app(args.model, args.library, progress=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    build_interface(app).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                                allowed_paths=[str(app.render_dir)])
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1250"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")), options=opts)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 180)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#query textarea")).send_keys(args.query)
        driver.find_element(By.ID, "search-button").click()
        wait.until(lambda d: args.query in d.find_element(By.ID, "search-status").text)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-gallery img")) >= 5)
        driver.save_screenshot(args.output)
        print(f"wrote {args.output}: {driver.find_element(By.ID, 'search-status').text}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
