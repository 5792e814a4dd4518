"""The inference thread rule: never more torch threads than idle cores, nor than this process's share of them."""
import subprocess
import sys
import time

from tetragen.threads import busy_cores, inference_threads


def test_rule_takes_the_idle_cores_within_the_share():
    assert inference_threads(cores=2, busy=0.0) == 2
    assert inference_threads(cores=2, busy=0.4) == 2  # less than half a core busy: still free
    assert inference_threads(cores=2, busy=1.2) == 1  # a training run on one core: the other one
    assert inference_threads(cores=2, busy=2.0) == 1  # at least one
    assert inference_threads(cores=8, busy=0.0, n_models=2) == 4
    assert inference_threads(cores=8, busy=6.0, n_models=2) == 2


def test_busy_cores_sees_a_process_that_computes():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores(0.5) >= 0.7  # that process keeps one core busy (others may add to it)
    finally:
        spin.kill()
        spin.wait()
