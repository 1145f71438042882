"""`swapface serve`: the web app and job API (FastAPI), on top of swapface.jobs."""
