"""The suite's background work (tests/graded_classes.py): what is computed ahead of the
tests is computed once, in order, and never waited on in vain."""
import threading

import pytest

from graded_classes import Ahead


def test_work_is_computed_in_order_once_and_asked_for_work_comes_from_the_queue():
    computed = []

    def piece(name):
        return lambda argument: computed.append(name) or (name, argument)

    queue = Ahead([("first", piece("first")), ("second", piece("second")),
                   ("third", piece("third"))])
    # Asked for before the queue reached it: computed here, and dropped from the queue.
    assert queue.result("third", piece("third"), 7) == ("third", 7)
    queue.run(7)
    assert computed == ["third", "first", "second"]
    assert queue.result("first", piece("first"), 7) == ("first", 7)
    assert computed == ["third", "first", "second"]


def test_two_threads_share_the_queue_and_compute_each_piece_once():
    begun, lock = [], threading.Lock()

    def piece(name):
        def compute(argument):
            with lock:
                begun.append(name)
            return name
        return compute

    names = ["piece %d" % index for index in range(40)]
    queue = Ahead([(name, piece(name)) for name in names])
    workers = [threading.Thread(target=queue.run, args=(None,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert sorted(begun) == sorted(names)  # each once, by one thread or the other
    assert [queue.result(name, lambda argument: pytest.fail("computed twice"), None)
            for name in names] == names


def test_while_a_piece_is_under_way_the_asker_computes_the_next_pieces():
    begun, release = threading.Event(), threading.Event()
    where = {}

    def slow(argument):
        begun.set()
        release.wait(10)
        return "slow"

    def piece(name):
        def compute(argument):
            where[name] = threading.get_ident()
            if len(where) == 2:
                release.set()
            return name
        return compute

    queue = Ahead([("slow", slow), ("next", piece("next")), ("last", piece("last"))])
    worker = threading.Thread(target=queue.run, args=(None,))
    worker.start()
    assert begun.wait(10)
    assert queue.result("slow", lambda argument: pytest.fail("computed twice"), None) == "slow"
    worker.join(10)
    assert where == {"next": threading.get_ident(), "last": threading.get_ident()}
    assert [queue.result(name, lambda argument: pytest.fail("computed twice"), None)
            for name in ("next", "last")] == ["next", "last"]


def test_a_piece_under_way_is_waited_for_and_its_error_reaches_the_asker():
    begun, release = threading.Event(), threading.Event()

    def slow(argument):
        begun.set()
        release.wait(10)
        raise ValueError("the grading failed")

    queue = Ahead([("slow", slow)])
    worker = threading.Thread(target=queue.run, args=(None,))
    worker.start()
    assert begun.wait(10)
    release.set()
    with pytest.raises(ValueError, match="the grading failed"):
        queue.result("slow", lambda argument: pytest.fail("computed twice"), None)
    worker.join(10)


def test_a_stopped_run_begins_nothing_more_and_stops_the_command_under_way(tmp_path):
    from conftest import BACKGROUND, run_command
    from graded_classes import Commands, Stopped

    commands = Commands()
    started = threading.Event()

    def long_command(argument):
        started.set()
        return run_command(["sleep", "60"], tmp_path, None)

    queue = Ahead([("long", long_command),
                   ("never", lambda argument: pytest.fail("begun after the stop"))])
    worker = threading.Thread(target=queue.run, args=(None, commands))
    worker.start()
    assert started.wait(10)
    while not commands.running:  # the command has begun
        threading.Event().wait(0.05)
    commands.stop()
    worker.join(20)
    assert not worker.is_alive()
    with pytest.raises(Stopped):
        queue.result("long", long_command, None)
    assert set(queue.begun) == {"long"}
    assert getattr(BACKGROUND, "commands", None) is None  # only the queue's thread had it
