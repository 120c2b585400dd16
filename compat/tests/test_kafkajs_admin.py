"""kafkajs's admin client against strom, via compat/node/admin_check.js: createTopics with
configEntries, describeConfigs, alterConfigs (the legacy whole-set AlterConfigs), createPartitions,
describeCluster, deleteTopicRecords and fetchTopicOffsets."""

from __future__ import annotations

import os
import shutil
import subprocess

from strom_harness import REPO_ROOT, TARGET
from test_java_admin import KAFKA_38_TOPIC_CONFIG_NAMES

NODE = shutil.which("node")
NODE_MODULES = TARGET / "compat-node" / "node_modules"
ADMIN_CHECK = REPO_ROOT / "compat" / "node" / "admin_check.js"


def test_kafkajs_admin(broker, topic):
    # scripts/setup-clients installs Node.js and kafkajs: their absence is a failure.
    assert NODE is not None, "no node on PATH: run scripts/setup-clients"
    assert (NODE_MODULES / "kafkajs").is_dir(), f"{NODE_MODULES / 'kafkajs'} missing: run scripts/setup-clients"
    b = broker("message.max.bytes=2000000", "group.initial.rebalance.delay.ms=0")
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES), KAFKAJS_NO_PARTITIONER_WARNING="1")
    timeout_s = 90
    cmd = [NODE, str(ADMIN_CHECK), b.bootstrap, topic, "--timeout-s", str(timeout_s),
           "--names", ",".join(KAFKA_38_TOPIC_CONFIG_NAMES), "--broker-max-message-bytes", "2000000"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s + 30, check=False, env=env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"admin_check.js did not exit within {timeout_s + 30} s; "
            f"stdout: {(exc.stdout or b'')[-3000:]!r} stderr: {(exc.stderr or b'')[-3000:]!r}"
        ) from None
    out = proc.stdout.decode(errors="replace")
    output = out + proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"admin_check.js exited {proc.returncode}:\n{output[-6000:]}"
    assert out.rstrip().endswith("OK"), output
