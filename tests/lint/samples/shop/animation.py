"""Objects with methods named like task methods, which are not tasks."""

import dataclasses


class Animation:
    def delay(self, ms):
        self.pending = ms

    def play(self):
        self.delay(16)


class Backoff:
    def delay(self, attempt):
        return 2**attempt


class Connection:
    def send(self, data):
        return data

    def send_with_options(self, data, **options):
        return self.send(data)

    def flush(self):
        self.send(b"")
        self.send_with_options(b"", urgent=True)


class Retrying(Backoff):
    def delay(self, attempt):
        return super().delay(attempt) + 1


@dataclasses.dataclass
class Frame:
    index: int


def animate():
    animation = Animation()
    animation.delay(100)
    Backoff().delay(3)
    backoff: Backoff = Backoff()
    backoff.apply_async = None


def wait(backoff: Backoff, attempt: int) -> int:
    return backoff.delay(attempt)


def sleep_for(policy: "Backoff", n):
    return policy.delay(n)


module_backoff = Backoff()


def later():
    return module_backoff.delay(1)
