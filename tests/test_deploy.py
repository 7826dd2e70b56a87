"""The deployment files: docker-compose.yml parses with a real Compose parser, and every NEWSWATCH_
variable it or .env.example sets is one newswatch knows (no Docker engine runs here, so nothing starts)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from newswatch.config import Settings, known_env_names

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = shutil.which("docker-compose")


@pytest.fixture(scope="module")
def compose_config() -> str:
    if COMPOSE is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is not installed; .ci/run installs Debian's docker-compose package")
        pytest.skip("docker-compose is not installed (CI installs it)")
    proc = subprocess.run([COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_compose_file_is_valid_and_has_the_services(compose_config):
    for service in ("redis:", "scheduler:", "alerts:"):
        assert f"\n  {service}" in compose_config
    assert "noeviction" in compose_config and "everysec" in compose_config
    assert "service_healthy" in compose_config and "healthcheck" in compose_config
    assert "restart: on-failure" in compose_config


def test_every_newswatch_variable_is_known(compose_config):
    names = set(re.findall(r"\b(NEWSWATCH_[A-Z_]+)\b", compose_config))
    names |= set(re.findall(r"^(NEWSWATCH_[A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert names, "the deployment files set no NEWSWATCH_ variable?"
    unknown = names - known_env_names()
    assert not unknown, f"unknown settings in deployment files: {sorted(unknown)}"


def test_env_example_values_are_valid_settings():
    env = dict(re.findall(r"^([A-Z_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    settings = Settings.load(env)
    assert settings.site_url == "https://daydaynews.cc"


def test_nothing_secret_is_committed(tmp_path):
    # A user's filled-in .env stays out of git: in a repository with the project's .gitignore, `git add -A`
    # does not stage it (and the image build copies named folders only, never the project root).
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    (tmp_path / ".gitignore").write_text((ROOT / ".gitignore").read_text())
    (tmp_path / ".env").write_text("NEWSWATCH_WEBHOOK_SECRET=whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n")
    (tmp_path / ".env.example").write_text((ROOT / ".env.example").read_text())
    for args in (["init", "-q"], ["add", "-A"]):
        subprocess.run([git, "-C", str(tmp_path), *args], check=True, capture_output=True)
    staged = subprocess.run([git, "-C", str(tmp_path), "ls-files"], check=True, capture_output=True, text=True)
    assert staged.stdout.split() == [".env.example", ".gitignore"]
    assert not re.search(r"^COPY \.\s", (ROOT / "Dockerfile").read_text(), re.M)
    for name in ("docker-compose.yml", ".env.example", "Dockerfile"):
        text = (ROOT / name).read_text()
        assert not re.search(r"whsec_[A-Za-z0-9+/=]{8,}", text)
        assert not re.search(r"https?://[0-9a-f]{16,}@", text)
