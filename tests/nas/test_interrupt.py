"""Ctrl-C handling as a room of its own: one signal raises Interrupted, handlers come back, a
stop that hangs is cut by the watchdog unless it is disarmed, checkpoints are never cut."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from evo_msa.nas.interrupt import Interrupted, StopGuard, interruption, signals_deferred


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_raises_interrupted_and_the_handlers_come_back(sig, code):
    before = signal.getsignal(sig)
    guard = StopGuard(grace_s=60)
    with pytest.raises(Interrupted) as caught:
        with guard.catching():
            os.kill(os.getpid(), sig)
            time.sleep(5)  # the handler runs at the next bytecode
    guard.disarm()
    assert caught.value.exit_code == code
    assert signal.getsignal(sig) is before


def test_the_interruption_behind_a_wrapped_exception_is_found():
    try:
        try:
            raise Interrupted(signal.SIGINT)
        except Interrupted as inner:
            raise SystemError("returned a result with an exception set") from inner
    except SystemError as outer:
        assert isinstance(interruption(outer), Interrupted)
    assert interruption(ValueError("no")) is None


def test_signals_wait_until_a_deferred_block_ends():
    guard = StopGuard(grace_s=60)
    done = []
    with pytest.raises(Interrupted):
        with guard.catching():
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                done.append("checkpoint written")  # not cut in half
            time.sleep(5)
    guard.disarm()
    assert done == ["checkpoint written"]


WATCHDOG = textwrap.dedent("""
    import os, signal, sys, time
    from evo_msa.nas.interrupt import Interrupted, StopGuard
    guard = StopGuard(lambda code: print("stuck", code, flush=True), grace_s=0.5)
    try:
        with guard.catching():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    except Interrupted:
        print("interrupted", flush=True)
    if sys.argv[1] == "disarm":
        guard.disarm()
    time.sleep(2)  # a stop that hangs (e.g. Ray's shutdown)
    print("finished", flush=True)
""")


@pytest.mark.parametrize("mode, out, code", [("hang", "interrupted stuck 143", 143),
                                             ("disarm", "interrupted finished", 0)])
def test_a_hanging_stop_is_cut_unless_the_guard_is_disarmed(mode, out, code):
    r = subprocess.run([sys.executable, "-c", WATCHDOG, mode], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == code, r.stderr[-2000:]
    assert " ".join(r.stdout.split()) == out


def test_a_signal_another_thread_receives_still_waits_for_the_deferred_block():
    import threading

    # a thread started before the block keeps the signals unblocked (as Ray's threads do):
    # the kernel hands the signal to it, and Python runs our handler in the main thread
    other = threading.Thread(target=lambda: time.sleep(1.0), daemon=True)
    other.start()
    guard = StopGuard(grace_s=60)
    done = []
    with pytest.raises(Interrupted):
        with guard.catching():
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(50):
                    time.sleep(0.01)  # bytecodes run: a handler would fire here
                done.append("checkpoint written")
            time.sleep(5)
    guard.disarm()
    assert done == ["checkpoint written"]
