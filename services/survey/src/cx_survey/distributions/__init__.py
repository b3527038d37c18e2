"""Distributions: triggered sends, durable scheduler, reminders, contact frequency, incentives."""
