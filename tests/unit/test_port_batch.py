"""``ports.batch()``: kernel changes deferred to the batch's end, netted per element.

Within a batch nothing reaches the kernel; what is due at its end is, per DNAT map element,
what the kernel held before and what it must hold after. (The kernel side is tested in
tests/kernel/test_nft_map_elements.py and test_ports_links.py.)
"""

from __future__ import annotations

from netplumb.ops import portrules


def b(port: int, ip: str = "10.89.0.2") -> dict[str, object]:
    return {
        "owner": "host:web",
        "guest": "web",
        "family": 4,
        "host_ip": None,
        "host_port": port,
        "container_ip": ip,
        "container_port": 80,
        "proto": "tcp",
    }


def due() -> list[tuple[object, object]]:
    return sorted(portrules._batch_elements.values(), key=repr)


def test_an_add_then_a_drop_of_one_element_cancel_out() -> None:
    with portrules.batch():  # its end has nothing to do: no kernel is touched
        portrules.changed([b(8080)], [])
        portrules.changed([], [b(8080)])
        assert due() == [(None, None)]
    assert portrules._batch_elements == {}


def test_a_drop_then_an_add_of_one_key_deletes_and_adds() -> None:
    portrules._batch_depth += 1  # a batch whose end is not run: only what is due is looked at
    try:
        portrules.changed([], [b(8080)])
        portrules.changed([b(8080, "10.89.0.9")], [])  # the same key, another guest
        portrules.changed([b(8081)], [])
        assert due() == [(None, b(8081)), (b(8080), b(8080, "10.89.0.9"))]
        portrules.changed([], [b(8080, "10.89.0.9")])
        assert due() == [(None, b(8081)), (b(8080), None)]
    finally:
        portrules._batch_depth -= 1
        portrules._batch_elements.clear()
