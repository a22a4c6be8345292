"""Publishing the site: the GitHub Actions workflow deploys versioned docs with mike.

The deploy steps are run here as the workflow runs them, on a throwaway git repository holding
the project's files, with ``--push`` removed: so a broken command, a mike flag that does not
exist, or a theme not wired to mike's versions fails here, not on the first push to main.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.docs.markdown_blocks import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "docs.yml"


def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps() -> list[dict]:
    (job,) = workflow()["jobs"].values()
    return job["steps"]


def step(name_start: str) -> dict:
    matches = [s for s in steps() if s.get("name", "").startswith(name_start)]
    assert len(matches) == 1, f"expected one step named {name_start!r}..., got {matches}"
    return matches[0]


def test_workflow_deploys_on_pushes_to_main_and_release_tags() -> None:
    triggers = workflow()["on"]
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["push"]["tags"] == ["v*.*.*"]
    assert workflow()["permissions"]["contents"] == "write"


def test_workflow_builds_strictly_before_deploying() -> None:
    names = [s.get("name", "") for s in steps()]
    build = names.index("Build strictly")
    assert step("Build strictly")["run"].strip() == "mkdocs build --strict"
    assert all(build < i for i, n in enumerate(names) if n.startswith("Deploy"))


def test_theme_reads_mikes_versions() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python/name:", ""))
    assert config["extra"]["version"]["provider"] == "mike"


def _throwaway_repo(tmp_path: Path) -> Path:
    """A git repository with the project's tracked files as they are in the working tree."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    repo = tmp_path / "repo"
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    env = {"GIT_CONFIG_GLOBAL": os.devnull}
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "test"],
        ["git", "config", "user.email", "test@example.invalid"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "snapshot"],
    ):
        subprocess.run(command, cwd=repo, check=True, env={**os.environ, **env})
    return repo


def _run_step(repo: Path, name: str, ref: str, ref_name: str) -> None:
    script = step(name)["run"].replace(" --push", "")
    env = {
        **os.environ,
        "GITHUB_REF": ref,
        "GITHUB_REF_NAME": ref_name,
        "NO_MKDOCS_2_WARNING": "1",
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_steps_publish_dev_and_a_release_as_latest(tmp_path: Path) -> None:
    pytest.importorskip("mike", reason="the docs extra is not installed: pip install -e .[docs]")
    repo = _throwaway_repo(tmp_path)
    _run_step(repo, "Deploy the development version", "refs/heads/main", "main")
    _run_step(repo, "Deploy a release version", "refs/tags/v0.1.3", "v0.1.3")

    def pages(path: str) -> str:
        return subprocess.run(
            ["git", "show", f"gh-pages:{path}"], cwd=repo, capture_output=True, text=True
        ).stdout

    versions = {v["version"]: v["aliases"] for v in json.loads(pages("versions.json"))}
    assert versions == {"dev": [], "0.1": ["latest"]}
    assert "API reference" in pages("0.1/index.html")
    # the site's root redirects to the default version, "latest"
    assert 'window.location.replace(\n      "latest/"' in pages("index.html")
