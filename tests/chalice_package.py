"""`chalice package` offline, for the deployment tests: the project copied with an empty requirements.txt
(packaging then needs neither PyPI nor AWS credentials, only a region), and SAM's transform of the result."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
CHALICE = PROJECT / ".chalice"
REGION = "ap-southeast-2"


def chalice_package(tmp: Path, *extra: str) -> Path:
    """`chalice package --stage prod` of a copy of the project (no dependencies: offline); the output folder."""
    project = tmp / "project"
    if not project.exists():
        project.mkdir()
        shutil.copy2(PROJECT / "app.py", project / "app.py")
        shutil.copytree(PROJECT / "chalicelib", project / "chalicelib",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(CHALICE, project / ".chalice", ignore=shutil.ignore_patterns("deployments", "venv"))
        (project / "requirements.txt").write_text("")  # offline: no dependencies to download
    out = tmp / ("out-" + "-".join(a.strip("-").replace("/", "_") for a in extra if a.startswith("--")) or "out")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_DEFAULT_REGION=REGION, HOME=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())",
           "package", "--stage", "prod", *extra, str(out)]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"chalice package failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def sam_to_cloudformation(sam: dict) -> dict:
    """The CloudFormation template SAM's transform makes of the packaged template (as CloudFormation would)."""
    import samtranslator.translator.transform as translator
    from samtranslator.public.exceptions import InvalidDocumentException

    class NoManagedPolicies:
        def load(self):
            return {}

    tpl = copy.deepcopy(sam)
    for res in tpl["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://bucket/deployment.zip"  # what `aws cloudformation package` does
    try:
        return translator.transform(tpl, {"AWS::Region": REGION}, NoManagedPolicies())
    except InvalidDocumentException as exc:  # pragma: no cover - the message is the point
        pytest.fail("SAM rejects the template: " + "; ".join(str(c) for c in exc.causes))
