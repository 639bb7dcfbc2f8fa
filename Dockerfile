FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BRIDGE_VAR_DIR=/var/lib/bridge
WORKDIR /app
# DejaVu Sans gives invoice PDFs every currency sign (€, £, ¥).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN mkdir -p /var/lib/bridge \
 && DJANGO_SECRET_KEY=build-only PRICING_API_TOKEN=build-only python manage.py collectstatic --noinput \
 && useradd --system --home /app bridge && chown -R bridge /var/lib/bridge
USER bridge
EXPOSE 8000
CMD ["gunicorn", "-c", "bridge/gunicorn.conf.py", "bridge.wsgi"]
