import airlock


def test_enqueue_runs_after_scope_exit() -> None:
    ran: list[int] = []
    with airlock.scope():
        airlock.enqueue(ran.append, 1)
        assert ran == []
    assert ran == [1]
