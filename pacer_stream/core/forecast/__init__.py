"""Forecasts of conversion rate and cost per click by hour (PREDICTIVE_ML, ADAPTIVE_HYBRID)."""
