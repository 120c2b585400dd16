"""kafkajs (pure JavaScript client, compat/node/package-lock.json) against strom: a consumer group
that commits and a new member that resumes from the committed offsets, via compat/node/group_check.js."""

from __future__ import annotations

import os
import shutil
import subprocess

from strom_harness import REPO_ROOT, TARGET

NODE = shutil.which("node")
NODE_MODULES = TARGET / "compat-node" / "node_modules"
GROUP_CHECK = REPO_ROOT / "compat" / "node" / "group_check.js"


def test_kafkajs_group_commits_and_resumes(broker, topic):
    # scripts/setup-clients installs Node.js and kafkajs: their absence is a failure.
    assert NODE is not None, "no node on PATH: run scripts/setup-clients"
    assert (NODE_MODULES / "kafkajs").is_dir(), f"{NODE_MODULES / 'kafkajs'} missing: run scripts/setup-clients"
    b = broker("group.initial.rebalance.delay.ms=0")
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES), KAFKAJS_NO_PARTITIONER_WARNING="1")
    timeout_s = 90
    cmd = [NODE, str(GROUP_CHECK), b.bootstrap, topic, f"{topic}-group", "--timeout-s", str(timeout_s)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 30, check=False, env=env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"group_check.js did not exit within {timeout_s + 30} s; "
            f"stdout: {(exc.stdout or b'')[-3000:]!r} stderr: {(exc.stderr or b'')[-3000:]!r}"
        ) from None
    out = proc.stdout.decode(errors="replace")
    output = out + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"group_check.js exited {proc.returncode}:\n{output[-6000:]}"
    assert out.rstrip().endswith("OK"), output
