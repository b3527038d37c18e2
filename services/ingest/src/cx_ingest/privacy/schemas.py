import re

from pydantic import BaseModel, ConfigDict, Field

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class CustomPatternIn(BaseModel):
    name: str = Field(pattern=NAME.pattern, description="lower_snake_case; counted under this name")
    pattern: str = Field(min_length=1, max_length=500, description="A regular expression (Python `regex` syntax)")
    replacement: str | None = Field(
        default=None,
        max_length=100,
        description="Literal text for each match (`\\1` is text, not a group reference); defaults to [NAME]",
    )


class PrivacySettingsIn(BaseModel):
    keep_raw: bool = Field(default=False, description="Keep the unredacted original next to the redacted text")
    custom_patterns: list[CustomPatternIn] = Field(default_factory=list, max_length=50)


class PrivacySettingsRead(PrivacySettingsIn):
    model_config = ConfigDict(from_attributes=True)


class RedactTest(BaseModel):
    text: str = Field(max_length=20_000)


class RedactTestResult(BaseModel):
    text: str
    counts: dict[str, int]
