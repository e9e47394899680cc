"""The C attribute reader of the compiled core (``_attrs.c``); see ``holdback._parse_attributes``."""

from typing import TypeVar

_A = TypeVar("_A", bound=tuple[bytes, int, int, bytes | None])

def parse_attributes(tag: bytes, attribute: type[_A], /) -> tuple[int, list[_A]]: ...
def tag_rest_end(data: bytes, pos: int, endpos: int, /) -> int: ...
