"""Check the built docs site: every internal link resolves, nothing loads from another host, and two pages render.

    python docs/check_site.py [HTML_DIR] [--screenshots DIR] [--no-browser]

1. Links: every href/src of every generated HTML page that is relative or same-site must name an existing
   file inside HTML_DIR, and a #fragment must name an id (or a name) on the target page. Links to other
   sites are counted, not followed (no network here), but a script, style sheet, font, image or frame
   loaded from another host fails the check: the site must work offline.
2. Browser: headless Chromium (Debian's chromium + chromium-driver, through selenium) opens the home page
   and the registry notebook's page, saves a screenshot of each to DIR, and fails if either page asked
   for anything but local files.

Exit code 1 with a list of every problem found.
"""
import argparse
import json
import re
import shutil
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent
# Tags and attributes whose URL the page loads by itself (not a link a reader follows).
RESOURCE_ATTRS = {("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"), ("video", "src"),
                  ("audio", "src"), ("embed", "src"), ("object", "data"), ("input", "src")}
LINK_ATTRS = {"href", "src", "data"}
LOADED_REL = {"stylesheet", "preload", "modulepreload", "icon", "shortcut", "apple-touch-icon", "manifest", "prefetch"}
REMOTE_SCHEMES = {"http", "https", "ws", "wss", "ftp"}
SKIP_SCHEMES = {"mailto", "javascript", "data", "tel", "blob", "about"}


class Page(HTMLParser):
    "The ids and the outgoing URLs (tag, attribute, url, loaded) of one HTML page."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.urls, self.n_outputs = set(), [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"): self.ids.add(a["id"])
        if tag == "a" and a.get("name"): self.ids.add(a["name"])  # old-style anchors
        if tag == "div" and "cell_output" in (a.get("class") or "").split(): self.n_outputs += 1
        rel = set((a.get("rel") or "").lower().split())
        for attr in LINK_ATTRS & a.keys():
            if tag == "a" and attr != "href": continue
            url = (a[attr] or "").strip()
            if not url: continue
            loaded = (tag, attr) in RESOURCE_ATTRS or (tag == "link" and bool(rel & LOADED_REL))
            self.urls.append((tag, attr, url, loaded))
        if a.get("srcset"):
            for part in a["srcset"].split(","):
                if part.strip(): self.urls.append((tag, "srcset", part.split()[0], True))

    handle_startendtag = handle_starttag


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def css_urls(path: Path) -> list[str]:
    "URLs a style sheet loads (url(...) and @import)."
    text = path.read_text(encoding="utf-8", errors="replace")
    return [m.group(2) for m in re.finditer(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""", text)] + \
           re.findall(r"""@import\s+['"]([^'"]+)['"]""", text)


def check_links(root: Path) -> dict:
    "Check every page under `root`; return counts and the list of problems."
    # _static/ holds the theme's assets (one is a Jinja template named .html), not pages.
    pages = sorted(p for p in root.rglob("*.html") if "_static" not in p.relative_to(root).parts)
    parsed, problems = {}, []
    n_internal = n_anchor = n_external = n_same_page = 0
    external_hosts = set()

    def page(p: Path) -> Page:
        if p not in parsed: parsed[p] = parse(p)
        return parsed[p]

    for p in pages:
        for tag, attr, url, loaded in page(p).urls:
            parts = urlsplit(url)
            if parts.scheme in SKIP_SCHEMES: continue
            where = f"{p.relative_to(root)}: <{tag} {attr}={url!r}>"
            if parts.scheme or parts.netloc:  # http(s)://..., //host/..., file://...
                if loaded: problems.append(f"{where} loads a resource from another host (the site must work offline)")
                else:
                    n_external += 1
                    external_hosts.add(parts.netloc or parts.scheme)
                continue
            if not parts.path:  # "#fragment" on the same page
                n_same_page += 1
                target = p
            else:
                n_internal += 1
                target = (root / parts.path.lstrip("/")) if parts.path.startswith("/") else (p.parent / unquote(parts.path))
                target = target.resolve()
                if target.is_dir(): target = target / "index.html"
                try: target.relative_to(root.resolve())
                except ValueError:
                    problems.append(f"{where} points outside the site")
                    continue
                if not target.is_file():
                    problems.append(f"{where} -> missing file {target.relative_to(root.resolve())}")
                    continue
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html":
                n_anchor += 1
                if frag not in page(target).ids:
                    problems.append(f"{where} -> no id {frag!r} in {target.relative_to(root.resolve())}")

    notebooks = [p for p in pages if p.parent.name == "notebooks"]
    n_outputs = sum(page(p).n_outputs for p in notebooks)
    if notebooks and not n_outputs: problems.append("no notebook page shows a cell output: were the notebooks executed?")

    styles = sorted(root.rglob("*.css"))
    n_css = 0
    for css in styles:
        for url in css_urls(css):
            parts = urlsplit(url)
            if parts.scheme in SKIP_SCHEMES: continue
            n_css += 1
            if parts.scheme or parts.netloc:
                problems.append(f"{css.relative_to(root)}: loads {url!r} from another host (the site must work offline)")
            elif not (css.parent / unquote(parts.path)).resolve().exists():
                problems.append(f"{css.relative_to(root)}: url({url!r}) -> missing file")
    return dict(pages=len(pages), notebooks=len(notebooks), outputs=n_outputs, internal=n_internal, same_page=n_same_page, anchors=n_anchor, external=n_external,
                external_hosts=sorted(external_hosts), css_files=len(styles), css_urls=n_css, problems=problems)


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1400,1000")


def screenshots(root: Path, out: Path, pages: dict[str, tuple[str, str | None]]) -> list[str]:
    "Open each page in headless Chromium (scrolled to a CSS selector, if given), save a screenshot; return problems."
    chromium, driver_path = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(chromium).exists() and Path(driver_path).exists()):
        return [f"headless Chromium is missing ({chromium}, {driver_path}): run `make browser`"]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    out.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS: options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="creason-docs-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    problems = []
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        for name, (rel, scroll_to) in pages.items():
            path = (root / rel).resolve()
            if not path.is_file():
                problems.append(f"screenshot {name}: {rel} was not built")
                continue
            driver.get_log("performance")  # drop what the browser did before this page (its start page)
            driver.get(path.as_uri())
            driver.execute_async_script("const done = arguments[0]; document.fonts.ready.then(() => done())")
            title = driver.title
            if scroll_to:  # e.g. a notebook's first cell output, to show the page has outputs
                driver.execute_script("const e = document.querySelector(arguments[0]); if (e) e.scrollIntoView({block: 'center'})", scroll_to)
            shot = out / f"{name}.png"
            driver.save_screenshot(str(shot))
            requested = [json.loads(e["message"])["message"]["params"].get("request", {}).get("url", "")
                         for e in driver.get_log("performance")
                         if '"Network.requestWillBeSent"' in e["message"]]
            remote = sorted({u for u in requested if urlsplit(u).scheme in REMOTE_SCHEMES})
            errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            print(f"screenshot: {shot}  ({rel}: {title!r}; {len(requested)} requests, {len(remote)} to other hosts)")
            problems += [f"{rel}: the browser requested {u} (the site must work offline)" for u in remote]
            problems += [f"{rel}: browser console error: {m}" for m in errors]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", nargs="?", default=str(DOCS / "_build" / "html"), help="the built site (default: docs/_build/html)")
    ap.add_argument("--screenshots", default=str(DOCS / "_build" / "screenshots"), help="where the PNGs go")
    ap.add_argument("--no-browser", action="store_true", help="check links only")
    args = ap.parse_args(argv)
    root = Path(args.html)
    if not (root / "index.html").is_file(): sys.exit(f"check_site: no site at {root} (run `make docs`)")
    res = check_links(root)
    print(f"pages: {res['pages']} HTML pages, of which {res['notebooks']} notebooks showing {res['outputs']} cell outputs")
    print(f"links: {res['internal']} links to other files of the site and "
          f"{res['same_page']} to the same page checked, {res['anchors']} #anchors checked; "
          f"{res['css_urls']} url()s in {res['css_files']} style sheets checked; "
          f"{res['external']} links to other sites not followed ({', '.join(res['external_hosts']) or 'none'})")
    problems = res["problems"]
    if not args.no_browser:
        problems += screenshots(root, Path(args.screenshots),
                                {"home": ("index.html", None),
                                 "registry-notebook": ("notebooks/01_registry.html", "div.cell_output")})
    if problems:
        print(f"\ncheck_site: {len(problems)} problem(s):", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print("check_site: OK")


if __name__ == "__main__":
    main()
