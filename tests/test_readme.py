"""The README as a user meets it: its consumer example runs as written, and its links lead somewhere.

The consumer example is the fenced block after the `<!-- tested: consumer example -->` marker, run
verbatim as its own Python process against a real embedded Redis that `newswatch crawl` filled from the
replica, with redis-py as installed (8.x here; the example also keeps to what 5.x offers).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from newswatch.embedded import EmbeddedRedis
from tests.replica import SEED_ID, Replica, corpus, corpus_article, on_topic_texts, topic_article
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- tested: consumer example -->"
ITEMS = 60  # more than one read's COUNT (10), and more than the 50 pending entries the old example read


def readme_block(marker: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(re.escape(marker) + r"\s*```python\n(.*?)```", text, re.S)
    assert found, f"README.md has no ```python block after {marker}"
    return found.group(1)


def busy_site(n: int) -> Replica:
    """n distinct on-topic articles: an on-topic fixture's title, lead and first paragraph over a long People's
    Daily document each (so no two are reprints of each other)."""
    replica = Replica(per_page=20)
    fixtures = on_topic_texts()
    docs = [d for d in corpus() if len(d["text"]) > 1200][:n]
    for k, doc in enumerate(docs):
        article = topic_article(fixtures[k % len(fixtures)], SEED_ID + 1000 + k,
                                published=f"2025年03月{1 + k // 24:02d}日{k % 24:02d}:00:00")
        article.paragraphs = [article.paragraphs[0], *corpus_article(doc, 0).paragraphs]
        replica.add(article)
    return replica


def crawl(env: dict, site_url: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "newswatch.cli", "crawl", "--site-url", site_url, "--json",
                           "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def printed_ids(out_path: Path) -> list[str]:
    return [line.split()[0] for line in out_path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_audit_15_readme_consumer_example_reads_all_pending_then_waits_for_new_items(tmp_path):
    data_dir = tmp_path / "data"
    server = EmbeddedRedis(data_dir)
    url = server.ensure()  # as a running `newswatch run` keeps it: the consumer connects to this server
    client = redis.Redis.from_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSWATCH_", "NWTEST_", "SENTRY_"))}
    env.update(NEWSWATCH_DATA_DIR=str(data_dir), NEWSWATCH_DOWNLOAD_DELAY="0", NEWSWATCH_AUTOTHROTTLE="0",
               NEWSWATCH_CONCURRENCY="8", PYTHONUNBUFFERED="1")
    consumer = None
    try:
        with busy_site(ITEMS) as replica:
            crawl(env, replica.url)
            queued = [fields[b"id"].decode() for _, fields in client.xrange("newswatch:items")]
            assert len(queued) == ITEMS, "every article of the site is a new, on-topic item"

            # The state a consumer leaves when it is killed between reading entries and acknowledging them:
            # every entry delivered to my-daemon/worker-1, none acknowledged.
            client.xgroup_create("newswatch:items", "my-daemon", id="0")
            client.xreadgroup("my-daemon", "worker-1", {"newswatch:items": ">"}, count=1000)
            assert client.xpending("newswatch:items", "my-daemon")["pending"] == ITEMS

            script = tmp_path / "consumer.py"
            script.write_text(readme_block(MARKER), encoding="utf-8")
            out = tmp_path / "consumer.out"
            with out.open("wb") as sink:
                consumer = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path,
                                            stdout=sink, stderr=subprocess.STDOUT)

            # After the restart it handles (and acknowledges) every pending entry, not only a first batch.
            assert wait_for(lambda: set(printed_ids(out)) >= set(queued), timeout=60), out.read_text()
            assert wait_for(lambda: client.xpending("newswatch:items", "my-daemon")["pending"] == 0, timeout=30)

            # Then it waits for new entries. An idle stream outlasts several of its BLOCK periods (a client
            # whose socket timeout is shorter than the BLOCK dies here with TimeoutError)...
            time.sleep(12)
            assert consumer.poll() is None, out.read_text()
            # ...and an article published now reaches it.
            fresh = topic_article(on_topic_texts()[2], SEED_ID + 5000, published="2025年04月01日08:00:00")
            replica.add(fresh)
            assert crawl(env, replica.url)["counts"]["new"] == 1
            assert wait_for(lambda: f"daydaynews-{fresh.id}" in printed_ids(out), timeout=60), out.read_text()
            assert consumer.poll() is None, out.read_text()

        handled = printed_ids(out)
        assert sorted(handled) == sorted([*queued, f"daydaynews-{fresh.id}"]), "each item handled exactly once"
        assert wait_for(lambda: client.xpending("newswatch:items", "my-daemon")["pending"] == 0, timeout=30)
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.send_signal(signal.SIGKILL)
            consumer.wait(timeout=10)
        client.close()
        server.stop()


# --- links ---------------------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code (where brackets are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a page: lower case, punctuation dropped, spaces to hyphens,
    a repeated heading numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M),
                              re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_every_relative_link_in_the_readme_and_docs_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in LINK.findall(_prose(page.read_text(encoding="utf-8"))):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: … — not ours to check offline
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in github_anchors(resolved.read_text("utf-8")):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
    assert len(pages) >= 8, [p.name for p in pages]  # the README and the docs pages it links to


# --- the quick start's helpers -------------------------------------------------------------------------

def _start(args: list[str], out: Path) -> subprocess.Popen:
    sink = out.open("wb")
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def test_quick_start_replica_publishes_a_new_article_and_receiver_checks_signatures(tmp_path):
    import urllib.request

    from alerts.signing import Signer
    from tests.loopback import free_port

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    site_port, hook_port = free_port(), free_port()
    site = _start(["tests.replica", "--port", str(site_port), "--publish-after", "0"], tmp_path / "site.out")
    hook = _start(["tests.receiver", "--port", str(hook_port), "--secret", secret], tmp_path / "hook.out")
    try:
        assert wait_for(lambda: "published a new article" in (tmp_path / "site.out").read_text(), timeout=60), \
            (tmp_path / "site.out").read_text()
        page = urllib.request.urlopen(f"http://127.0.0.1:{site_port}/international?page=1", timeout=10).read()
        assert b"/international/3930700.html" in page  # the article the quick start's revisit finds

        assert wait_for(lambda: "receiving webhooks" in (tmp_path / "hook.out").read_text(), timeout=60)
        body = json.dumps({"type": "article.new", "data": {"title": "美俄會談"}}, ensure_ascii=False).encode()
        for msg_id, key in (("daydaynews-1", secret), ("daydaynews-2", "whsec_" + "QUFB" * 8)):
            stamp = int(time.time())
            request = urllib.request.Request(f"http://127.0.0.1:{hook_port}/hook", data=body, method="POST", headers={
                "content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(stamp),
                "webhook-signature": Signer((key,)).signature(msg_id, stamp, body)})
            assert urllib.request.urlopen(request, timeout=10).status == 204
        assert wait_for(lambda: (tmp_path / "hook.out").read_text().count("\n") >= 3, timeout=30)
        lines = (tmp_path / "hook.out").read_text().splitlines()[1:]
        assert lines[0] == "daydaynews-1  signature ok  美俄會談"
        assert lines[1].startswith("daydaynews-2  SIGNATURE BAD")
    finally:
        _stop(site)
        _stop(hook)


REPO_PATH = re.compile(r"(?<![\w./-])((?:crawler|newswatch|alerts|scheduler|tests|bench|scripts|docs)/[\w./-]+?"
                       r"\.(?:py|toml|md|jsonl|json|txt|yml|lua))(?![\w])")


def test_every_file_the_readme_and_docs_name_exists():
    """A path the prose names (`crawler/extract.py`, tests/test_faults_site.py …) is a file of the
    repository: modules move, and the pages must move with them."""
    missing = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for path in sorted(set(REPO_PATH.findall(page.read_text(encoding="utf-8")))):
            if not (ROOT / path).exists():
                missing.append(f"{page.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)
