"""Number types of the YAML files: a boolean is never a number, infinity and NaN are never values.

pydantic's lax mode reads YAML's ``true`` as 1 and accepts ``.inf``; a campaign that says
``production_steps: true`` or ``timestep_fs: .inf`` is a mistake to report at validation, with
its line. Integers are accepted where floats are expected (``temperature_K: 300``), never the
other way round (``repeat: [2.5, 2, 2]`` is an error, not a truncation).
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt
from pydantic import AllowInfNan, Strict

#: Any integer (not a boolean, not a float).
Int = Annotated[int, Strict()]
PositiveInt = Annotated[int, Strict(), Gt(0)]
NonNegativeInt = Annotated[int, Strict(), Ge(0)]
#: Any finite number (an integer is fine; not a boolean, not ±inf or NaN).
Float = Annotated[float, Strict(), AllowInfNan(False)]
PositiveFloat = Annotated[float, Strict(), AllowInfNan(False), Gt(0)]
NonNegativeFloat = Annotated[float, Strict(), AllowInfNan(False), Ge(0)]
