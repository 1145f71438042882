"""Jobs for `swapface serve`: a durable store (SQL via SQLModel) and worker processes that run the stages."""
