"""Server-rendered respondent pages."""
