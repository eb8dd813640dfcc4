"""Open a Snakemake HTML report in headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven
by Selenium) and check that every figure in it renders: click each result's preview and wait for the
image to be decoded with a non-zero size; open each result's details and find its caption."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing_browser() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and shutil.which(Path(path).name) is None:
            return f"{path} missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium missing (pip install -e '.[test]')"
    return None


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1200",
    ):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or CHROMIUM
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or CHROMEDRIVER), options=options)


def _click(driver, element) -> None:
    """Dispatch the click on ``element`` itself. The report's menu animates its entries
    (``transition-all``), so a pointer click at the point where Selenium found the entry can land on
    its neighbour while the menu settles: that either raises ElementClickInterceptedException or, when
    the layout moves between Selenium's check and the click, opens another category (one CI run on a
    loaded machine then waited in vain for the result's row)."""
    driver.execute_script("arguments[0].click()", element)


def _open_category(driver, wait, report: Path, category: str, row: str, result: str) -> None:
    """Load the report afresh (the details view replaces the result list), open ``category`` ("name" or
    "name/subcategory") and wait for ``result``'s row; the error names the result and lists the rows the
    category did show."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    driver.get(report.resolve().as_uri())
    name, _, subcategory = category.partition("/")
    menu_entry = (By.XPATH, f"//a[normalize-space()='{name}']")
    # a report of several categories lists them on its menu; one of a single category behind "Results"
    results = driver.find_elements(By.XPATH, "//a[normalize-space()='Results']")
    if not driver.find_elements(*menu_entry) and results:
        _click(driver, results[0])
    link = wait.until(
        ec.presence_of_element_located(menu_entry),
        message=f"{result}: no '{name}' category in the report's menu",
    )
    _click(driver, link)
    if subcategory:  # several subcategories are menu entries of their own; one alone is shown directly
        entry = f"//a[normalize-space()='{subcategory}']"
        wait.until(
            lambda d: d.find_elements(By.XPATH, row) or d.find_elements(By.XPATH, entry),
            message=f"{result}: neither its row nor a '{subcategory}' subcategory under '{name}'",
        )
        if not driver.find_elements(By.XPATH, row):
            _click(driver, driver.find_element(By.XPATH, entry))
    try:
        wait.until(ec.presence_of_element_located((By.XPATH, row)))
    except TimeoutException:
        shown = [r.text.split("\n")[0] for r in driver.find_elements(By.XPATH, "//tr")]
        raise AssertionError(f"{result}: no row for it after opening '{category}'; rows shown: {shown}") from None


def _each_preview(report: Path, results: dict[str, dict[str, str]], timeout: float, check) -> dict:
    """For every result (category -> {result path: what to expect}): load the report, open the category,
    click the result's preview and return ``check(driver, wait, result, expected, row)`` per result; then
    no severe browser error may have been logged."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _driver()
    wait = WebDriverWait(driver, timeout)
    checked = {}
    try:
        for category, expected_by_result in results.items():
            for result, expected in expected_by_result.items():
                row = f"//td[normalize-space(text())='{result}']/ancestor::tr[1]"
                _open_category(driver, wait, report, category, row, result)
                _click(driver, driver.find_element(By.XPATH, row + "//a[@iconname='eye']"))
                checked[result] = check(driver, wait, result, expected, row)
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, f"browser errors: {severe}"
    finally:
        driver.quit()
    return checked


def _figure_shown(driver, wait, result: str, caption: str, row: str) -> tuple:
    """The previewed image decoded with a non-zero size and displayed; its details show the caption."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    name = result.rsplit("/", 1)[-1]
    image = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"img[src*='filename={name};']")),
        message=f"{result}: no image shown after clicking its preview",
    )
    wait.until(
        lambda d, img=image: d.execute_script("return arguments[0].complete", img),
        message=f"{result}: image never finished loading",
    )
    size = tuple(driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image))
    assert min(size) > 0, f"{result}: the browser could not decode the image ({size})"
    assert image.is_displayed(), f"{result}: image not displayed"
    _click(driver, driver.find_element(By.XPATH, row + "//a[@iconname='information-circle']"))
    wait.until(
        lambda d, c=caption: c in d.find_element(By.TAG_NAME, "body").text,
        message=f"{result}: caption ({caption!r}) not shown in its details",
    )
    return size


def report_figures_render(report: Path, figures: dict[str, dict[str, str]], timeout: float = 30) -> dict[str, tuple]:
    """``figures``: category -> {result path in the report: a phrase of its caption}. Returns, per
    result, the decoded image size; raises AssertionError naming the first figure that does not render."""
    return _each_preview(report, figures, timeout, _figure_shown)


def _sort_key(text: str):
    """The page's sort key (html_tables.SORT_SCRIPT): the leading number as parseFloat reads it, else the text."""
    import re

    number = re.match(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text)
    return float(number.group(0)) if number else text


def _check_sorting(driver, result: str) -> None:
    """Click the first header of the page's last sortable table twice: ascending, then descending, by the
    page's own key (checked where the column's keys are all numbers or all text)."""
    from selenium.webdriver.common.by import By

    table = driver.find_elements(By.CSS_SELECTOR, "table.sortable")[-1]
    n_rows = len(table.find_elements(By.CSS_SELECTOR, "tbody tr"))
    for descending in (False, True):
        _click(driver, table.find_element(By.CSS_SELECTOR, "thead th"))
        cells = [c.text for c in table.find_elements(By.CSS_SELECTOR, "tbody tr td:first-child")]
        assert len(cells) == n_rows, f"{result}: sorting lost rows"
        keys = [_sort_key(c) for c in cells]
        if len({type(k) for k in keys}) == 1:
            assert keys == sorted(keys, reverse=descending), f"{result}: column 1 not sorted by a click: {cells}"


def _table_shown(driver, wait, result: str, phrase: str, row: str) -> int:
    """The previewed page shown inline (an iframe, not a download), its table drawn with rows, ``phrase``
    and the provenance visible, a sortable table sorted by a header click; returns the number of rows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    name = result.rsplit("/", 1)[-1]
    frame = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, f"iframe[src*='filename={name};']")),
        message=f"{result}: not shown inline after clicking its preview",
    )
    assert frame.is_displayed() and frame.size["height"] > 0, f"{result}: its frame is not displayed"
    driver.switch_to.frame(frame)
    try:
        body = wait.until(ec.presence_of_element_located((By.TAG_NAME, "body")))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "table tbody tr"), message=f"{result}: no table rows")
        text = body.text
        assert phrase in text, f"{result}: {phrase!r} not shown in its table"
        assert "Provenance" in text, f"{result}: no provenance shown"
        if driver.find_elements(By.CSS_SELECTOR, "table.sortable"):
            _check_sorting(driver, result)
        return len(driver.find_elements(By.CSS_SELECTOR, "table tbody tr"))
    finally:
        driver.switch_to.default_content()


def report_tables_render(report: Path, tables: dict[str, dict[str, str]], timeout: float = 30) -> dict[str, int]:
    """``tables``: category (or "category/subcategory") -> {result path of an HTML table page: a phrase
    its table shows}. Returns the number of table rows per result; raises AssertionError naming the first
    page that is not shown as :func:`_table_shown` requires."""
    return _each_preview(report, tables, timeout, _table_shown)


def report_table_pages(workdir: Path, rules: Path) -> dict[str, dict[str, str]]:
    """The HTML table pages a run registered in its report, as :func:`report_tables_render` takes them:
    read from the rules' ``report("<path>.html", ..., category=..., subcategory=...)`` declarations and
    matched to the files the run wrote; the phrase is each page's first table cell."""
    import html
    import re

    declared = []
    for smk in sorted(rules.glob("*.smk")):
        for match in re.finditer(r'report\(\s*"([^"]+\.html)",(.*?)\)', smk.read_text(), re.S):
            category = re.search(r'\bcategory="([^"]+)"', match.group(2)).group(1)
            subcategory = re.search(r'subcategory="([^"]+)"', match.group(2))
            seen: set[str] = set()

            def wildcard(found: re.Match, seen=seen) -> str:  # a repeated wildcard matches the same text
                name = found.group(1)
                group = f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)"
                seen.add(name)
                return group

            pattern = re.sub(r"\\\{(\w+)\\\}", wildcard, re.escape(match.group(1)))
            literal = len(re.sub(r"\{\w+\}", "", match.group(1)))
            declared.append((literal, re.compile(pattern + "$"), category, subcategory and subcategory.group(1)))
    # the most specific declaration first: spatial_{study}_expectation.html before spatial_{study}.html
    declared.sort(key=lambda d: -d[0])
    pages: dict[str, dict[str, str]] = {}
    for path in sorted((workdir / "results").rglob("*.html")):
        result = path.relative_to(workdir).as_posix()
        for _, pattern, category, subcategory in declared:
            found = pattern.match(result)
            if found:
                key = category + ("/" + subcategory.format(**found.groupdict()) if subcategory else "")
                first = re.search(r"<td[^>]*>(.*?)</td>", path.read_text(), re.S)
                pages.setdefault(key, {})[result] = html.unescape(first.group(1)).strip()
                break
    return pages
