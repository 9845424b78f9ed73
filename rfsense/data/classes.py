"""XRF55 action classes (IDs 1..55; label = ID - 1). Source: aiotgroup/XRF55-repo:XRF55-QA.md (Q4, answer dated 2025-10-15; index did not expose that version's commit), verbatim copy read at masuw-code/XRF55-repo:README.md@ec4699d3f46b24b546ddd7fc7a65d01e0738229b. All 55 IDs verified."""
from __future__ import annotations

from rfsense.modalities import N_CLASSES

CLASS_NAMES: tuple[str, ...] = (
    "carrying weight",  # 1
    "mopping the floor",  # 2
    "using a phone",  # 3
    "throwing something",  # 4
    "picking something",  # 5
    "putting something on the table",  # 6
    "cutting something",  # 7
    "wearing a hat",  # 8
    "putting on clothing",  # 9
    "blowing dry hair",  # 10
    "combing hair",  # 11
    "brushing teeth",  # 12
    "drinking",  # 13
    "eating",  # 14
    "smoking",  # 15
    "shaking hands",  # 16
    "hugging",  # 17
    "handing something to someone",  # 18
    "kicking someone",  # 19
    "hitting someone with something",  # 20
    "choking someone's neck",  # 21
    "pushing someone",  # 22
    "body weight squats",  # 23
    "Tai Chi",  # 24
    "boxing",  # 25
    "weightlifting",  # 26
    "hula hooping",  # 27
    "jumping rope",  # 28
    "jumping jack",  # 29
    "high leg lifting",  # 30
    "waving",  # 31
    "clapping hands",  # 32
    "falling on the floor",  # 33
    "jumping",  # 34
    "running",  # 35
    "sitting down",  # 36
    "standing up",  # 37
    "turning",  # 38
    "walking",  # 39
    "stretching",  # 40
    "patting on the shoulder",  # 41
    "playing Er-Hu",  # 42
    "playing Ukulele",  # 43
    "playing drum",  # 44
    "foot stamping",  # 45
    "shaking head",  # 46
    "nodding",  # 47
    "drawing a circle",  # 48
    "drawing a cross",  # 49
    "pushing",  # 50
    "pulling",  # 51
    "swiping left",  # 52
    "swiping right",  # 53
    "swiping up",  # 54
    "swiping down",  # 55
)
assert len(CLASS_NAMES) == N_CLASSES
