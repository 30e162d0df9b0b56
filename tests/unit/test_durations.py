import pytest

from tidings.durations import Duration, parse_duration


@pytest.mark.parametrize(("text", "millis", "label"), [
    ("500ms", 500, "500ms"), ("10s", 10_000, "10s"), ("60s", 60_000, "1m"),
    ("90s", 90_000, "90s"), ("1m", 60_000, "1m"), ("2h", 7_200_000, "2h"),
    ("1d", 86_400_000, "1d"), ("1500ms", 1500, "1500ms"), (" 10 m ", 600_000, "10m"),
])
def test_parse_and_canonical_label(text: str, millis: int, label: str) -> None:
    duration = parse_duration(text)
    assert duration == Duration(millis)
    assert duration.label == label


@pytest.mark.parametrize("bad", ["ten", "10", "10 seconds", "-5s", "", "1.5s", True, None, 10])
def test_bad_durations_explain_the_format(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|unit"):
        parse_duration(bad)
