"""Level 1: the exception tree is the one drawn in exceptions.py's docstring."""
import inspect
import re

from realtimemagic import exceptions
from realtimemagic.exceptions import (IllegalTransition, PeerError, ProtocolError,
                                      RealTimeMagicError, RequestRefused, SendStalled)


def drawn_tree():
    """(name, parent) for every class drawn in the docstring, read from its indentation."""
    parents, pairs = {}, []
    for line in exceptions.__doc__.splitlines():
        match = re.match(r"^([|\s]*)\+-- (\w+)", line)
        if match:
            depth = len(match.group(1)) // 4 - 1  # the tree is indented by 4
            parents[depth + 1] = match.group(2)
            pairs.append((match.group(2), parents.get(depth, "RealTimeMagicError")))
    return pairs


def test_every_exception_is_drawn_under_its_real_parent():
    drawn = drawn_tree()
    classes = {name: value for name, value in vars(exceptions).items()
               if inspect.isclass(value) and issubclass(value, RealTimeMagicError)
               and value.__name__ == name and value is not RealTimeMagicError}
    assert sorted(name for name, _ in drawn) == sorted(classes)
    for name, parent in drawn:
        assert classes[name].__bases__[0].__name__ == parent, name


def test_invariant_violations_are_assertions_and_stalls_are_socket_errors():
    assert issubclass(IllegalTransition, AssertionError)
    assert issubclass(SendStalled, OSError) and issubclass(SendStalled, PeerError)


def test_the_old_name_of_a_refusal_still_works():
    assert ProtocolError is RequestRefused
    try:
        raise ProtocolError("bad_request", "refused", "c", 7)
    except RequestRefused as error:
        assert (error.code, error.reason, error.channel, error.request_id) == (
            "bad_request", "refused", "c", 7)
