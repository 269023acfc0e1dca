"""Dataset tables, staging and publishing; upload and export files."""
