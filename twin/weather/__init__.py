"""Weather layer: EPW reading, a synthesised typical year, psychrometrics, heat waves, interpolation."""

from twin.weather.epw import read_epw
from twin.weather.psychro import (
    dew_point_c,
    humidity_ratio_kg_kg,
    p_sat_pa,
    relative_humidity_pct,
    station_pressure_pa,
    wet_bulb_c,
)
from twin.weather.synth import heat_wave, load_climate, load_weather, typical_year, weather_at

__all__ = [
    "read_epw",
    "typical_year",
    "heat_wave",
    "weather_at",
    "load_weather",
    "load_climate",
    "p_sat_pa",
    "wet_bulb_c",
    "dew_point_c",
    "relative_humidity_pct",
    "humidity_ratio_kg_kg",
    "station_pressure_pa",
]
