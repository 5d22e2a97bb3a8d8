"""Support KPIs: computation and reports."""
