"""Cache file names of the training data (echokdm.train.cache)."""

import re

from echokdm.train.cache import cache_key


def test_cache_key_depends_on_every_part_and_not_on_dict_order():
    key = cache_key("train", 120, 112, {"size": 96, "frames": 24})
    assert re.fullmatch(r"[0-9a-f]{10}", key)
    assert key == cache_key("train", 120, 112, {"frames": 24, "size": 96})
    others = [
        cache_key("val", 120, 112, {"size": 96, "frames": 24}),
        cache_key("train", 121, 112, {"size": 96, "frames": 24}),
        cache_key("train", 120, 112, {"size": 96, "frames": 25}),
        cache_key("train", 120, 112),
    ]
    assert len({key, *others}) == 5
