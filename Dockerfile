FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BRIDGE_VAR_DIR=/var/lib/bridge
# Every process (gunicorn workers, Celery's pool) writes its metric counts here and /metrics
# sums them (bridge.metrics); docker-compose.yml mounts one volume there for all services.
ENV PROMETHEUS_MULTIPROC_DIR=/var/lib/bridge-metrics
WORKDIR /app
# DejaVu Sans gives invoice PDFs every currency sign (€, £, ¥).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# The translation catalogues' .mo files are build output (not in git): Babel, pure Python.
RUN pybabel compile --domain django --directory locale
# A fixed uid: docker-compose.yml's in-memory metrics volume is mounted for this uid.
RUN mkdir -p /var/lib/bridge /var/lib/bridge-metrics \
 && env -u PROMETHEUS_MULTIPROC_DIR DJANGO_SECRET_KEY=build-only PRICING_API_TOKEN=build-only \
    python manage.py collectstatic --noinput \
 && groupadd --system --gid 10001 bridge \
 && useradd --system --uid 10001 --gid bridge --home /app bridge \
 && chown -R bridge:bridge /var/lib/bridge /var/lib/bridge-metrics
USER bridge
EXPOSE 8000
CMD ["gunicorn", "-c", "bridge/gunicorn.conf.py", "bridge.wsgi"]
