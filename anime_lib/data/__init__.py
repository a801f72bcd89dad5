"""Datasets: downloads, the real-dataset registry and local image folders."""
