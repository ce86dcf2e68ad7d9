"""Errors a user can act on: each names the file, the path to the key and what was expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file."""

    file: str
    key: str  # dotted path to the key, e.g. "halls[0].racks[1].type"; "" for the whole file
    message: str  # what was found and what was expected

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        return f"{where}: {self.message}"


class InputError(ValueError):
    """Bad input (site, scenario, catalog, weather file). Carries every problem found."""

    def __init__(self, problems: list[Problem] | Problem):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def one(cls, file: str | Path, key: str, message: str) -> InputError:
        return cls(Problem(str(file), key, message))


class InfeasibleError(RuntimeError):
    """An optimisation cannot meet a limit; the message says which limit and by how much."""

    def __init__(self, message: str, details: dict | None = None):
        self.details = details or {}
        super().__init__(message)
