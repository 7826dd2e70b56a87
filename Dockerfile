# One image for every newswatch service: the scheduler (`newswatch run`) and the alert worker (`newswatch alerts`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    NEWSWATCH_DATA_DIR=/var/lib/newswatch

WORKDIR /app
COPY pyproject.toml README.md ./
COPY newswatch ./newswatch
COPY crawler ./crawler
COPY scheduler ./scheduler
COPY alerts ./alerts
RUN pip install . && useradd --system --home /var/lib/newswatch --create-home newswatch

USER newswatch
ENTRYPOINT ["newswatch"]
CMD ["run"]
