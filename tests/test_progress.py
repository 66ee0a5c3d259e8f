"""The console's heartbeat: a status line when a long step has been quiet, never otherwise."""
import pickle
import time

from evo_msa.progress import Heartbeat, clock


def test_a_quiet_step_says_where_it_stands_and_a_talking_one_is_left_alone():
    lines = []
    with Heartbeat(lines.append, quiet=0.2) as beat:
        assert Heartbeat.active is beat
        beat.status = lambda: "       trainings 3/16 done"
        time.sleep(0.7)
        said = len(lines)
        assert said >= 1 and all(line == "       trainings 3/16 done" for line in lines)
        beat.status = lambda: None  # nothing to say: nothing said
        time.sleep(0.5)
        assert len(lines) == said
        for _ in range(6):  # lines more often than `quiet`: no status in between
            beat.log("gen")
            time.sleep(0.05)
        assert lines[said:] == ["gen"] * 6
    assert Heartbeat.active is None


def test_doing_counts_the_time_of_a_step_and_the_copy_tune_pickles_only_logs():
    lines = []
    with Heartbeat(lines.append, quiet=0.2) as beat:
        beat.doing("starting Ray")
        time.sleep(0.5)
        copy = pickle.loads(pickle.dumps(beat))
    assert lines and lines[0].strip().startswith("starting Ray (0m00s)")
    copy.log("x")  # the searcher's copy in a Ray process: it logs, and starts no thread
    assert copy._log.__self__[-1] == "x" and copy._thread is None
    assert clock(75.4) == "1m15s" and clock(-3) == "0m00s"
