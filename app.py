"""MWA calibration web services: the Chalice app.

One route per documented endpoint (service-spec), plus the SQS handler that stores calibration
requests and the S3-event handler that reacts to fit files landing in the calibration bucket.
Each handler is a few lines; the work is in ``chalicelib``.
"""

from __future__ import annotations

from chalice import Chalice, IAMAuthorizer, Response

from chalicelib import deadline, health, observability
from chalicelib import calrequests as cal_requests
from chalicelib.config import settings
from chalicelib.errors import ServiceError
from chalicelib.observability import logger
from chalicelib.summary import assets
from chalicelib.web import (GRAFANA_CORS, error_response, from_chalice_error, internal_error, is_chalice_error,
                            json_response)

app = Chalice(app_name="mwa-calib", configure_logs=False)


@app.middleware("http")
def answer_errors(event, get_response):
    """Turn every failure into a JSON answer; log, count and time every request under its request id."""
    request_id = observability.begin_request(event)
    status = 500
    try:
        with deadline.request(settings().request_deadline_s):  # every dependency's budget comes from it
            response = get_response(event)
        if response.status_code == 500 and is_chalice_error(response):
            response = internal_error(request_id)  # Chalice caught and logged a fault of ours
        elif is_chalice_error(response):
            response = from_chalice_error(response, request_id)  # its 405/415: the documented body
        status = response.status_code
        return response
    except ServiceError as exc:
        status = exc.status
        if exc.status >= 500:
            logger.warning("service unavailable", extra={"error": exc.message, "status": exc.status})
        elif exc.status == 404 and "searched" in exc.details:
            observability.count(observability.SELECTION_MISS)
        return error_response(exc, request_id)
    except Exception:  # noqa: BLE001 - the one place that turns faults of ours into a 500
        logger.exception("internal error")
        return internal_error(request_id)
    finally:
        observability.end_request(status)


observability.install(app)  # the event functions' middleware; Chalice's own log lines as JSON


def _query() -> dict[str, str]:
    return app.current_request.query_params or {}


@app.route("/calib/health")
def get_health() -> Response:
    report = health.check()
    return json_response(report, 200 if report["ok"] else 503)


@app.route("/calib/openapi.json", cors=True)
def openapi_document() -> Response:
    """The OpenAPI 3 description of every public endpoint."""
    from chalicelib import openapi

    req = app.current_request
    return json_response(openapi.document(openapi.server_url(req.headers, req.context)),
                         headers={"Cache-Control": "public, max-age=300"})


@app.route("/calib/get_cal_solution")
def get_cal_solution() -> Response:
    from chalicelib.api import cal_solution

    return cal_solution.get_cal_solution(_query())


@app.route("/calib/get_cal_fits")
def get_cal_fits() -> Response:
    from chalicelib.api import cal_solution

    return cal_solution.get_cal_fits(_query())


@app.route("/calib/get_cal_selection")
def get_cal_selection() -> Response:
    from chalicelib.api import cal_solution

    return cal_solution.get_cal_selection(_query())


@app.route("/calib/selection")
def selection_page() -> Response:
    from chalicelib.summary import views

    return views.selection_page(_query())


@app.route("/calib/add_cal_request", api_key_required=True)  # API Gateway enforces it (prod usage plan)
def add_cal_request() -> Response:
    cal_requests.add_cal_request(_query())  # 400/404/409 raised; queued -> 200, empty body
    return Response(body="", status_code=200, headers={"Content-Type": "text/plain"})


@app.route("/calib/summary")
def summary() -> Response:
    from chalicelib.summary import views

    return views.summary_page(_query())


@app.route("/calib/fit")
def fit_page() -> Response:
    from chalicelib.summary import views

    return views.fit_page(_query())


@app.route("/calib/favicon.svg")
def favicon_svg() -> Response:
    return assets.favicon()


@app.route("/favicon.ico")
def favicon_ico() -> Response:
    return assets.favicon()


@app.route("/robots.txt")
def robots_txt() -> Response:
    return assets.robots()


@app.route("/calib/plot/{kind}")
def plot(kind: str) -> Response:
    from chalicelib.plots import service

    return service.plot_response(kind, _query())


@app.route("/calib/get_calfile_for_obsid")
def get_calfile_for_obsid() -> Response:
    from chalicelib import legacy

    return legacy.get_calfile_for_obsid(_query())


@app.route("/calib/get_calfile_for_calid")
def get_calfile_for_calid() -> Response:
    from chalicelib import legacy

    return legacy.get_calfile_for_calid(_query())


@app.route("/calib/grafana", methods=["GET"], cors=GRAFANA_CORS)
def grafana_health() -> Response:
    from chalicelib.grafana import api

    return api.health(observability.request_id())


@app.route("/calib/grafana/{action}", methods=["POST"], cors=GRAFANA_CORS,
           content_types=["application/json", "text/plain", "application/x-www-form-urlencoded"])
def grafana_action(action: str) -> Response:
    from chalicelib.grafana import api

    req = app.current_request
    return api.action(action, req.raw_body, observability.request_id())


@app.route("/calib/compare")
def compare_solutions() -> Response:
    from chalicelib.compare import api

    return api.compare_response(_query())


# --- operators steer the selection (README "Operating the selection"): SigV4 + IAM in prod, 127.0.0.1 locally
ADMIN_AUTH = IAMAuthorizer()


def _admin(action: str, *args: str) -> Response:
    from chalicelib.admin import actions

    req = app.current_request
    return getattr(actions, action)(*args, req.query_params or {}, req.context or {})


@app.route("/calib/admin/retire", methods=["POST"], authorizer=ADMIN_AUTH)
def admin_retire() -> Response:
    return _admin("retire")


@app.route("/calib/admin/restore", methods=["POST"], authorizer=ADMIN_AUTH)
def admin_restore() -> Response:
    return _admin("restore")


@app.route("/calib/admin/prefer", methods=["POST"], authorizer=ADMIN_AUTH)
def admin_prefer() -> Response:
    return _admin("prefer")


@app.route("/calib/admin/epochs", methods=["POST"], authorizer=ADMIN_AUTH)
def admin_add_epoch() -> Response:
    return _admin("add_epoch")


@app.route("/calib/admin/epochs", methods=["GET"], authorizer=ADMIN_AUTH)
def admin_list_epochs() -> Response:
    return _admin("list_epochs")


@app.route("/calib/admin/epochs/{epoch_id}/end", methods=["POST"], authorizer=ADMIN_AUTH)
def admin_end_epoch(epoch_id: str) -> Response:
    return _admin("end_epoch", epoch_id)


@app.route("/calib/admin/audit", methods=["GET"], authorizer=ADMIN_AUTH)
def admin_audit() -> Response:
    return _admin("audit")


@app.on_sqs_message(queue=cal_requests.REQUEST_QUEUE, batch_size=cal_requests.REQUEST_BATCH_SIZE,
                    name="store_request")
def store_request(event):
    """SQS: store queued calibration requests; a failure raises, so the message stays (then the DLQ)."""
    cal_requests.store_sqs_records((record.to_dict() for record in event), event.context)


@app.lambda_function(name="on_cal_file")
def on_cal_file(event, context):
    """S3: a file landed in the calibration bucket; ingest fits and fire callbacks."""
    from chalicelib.ingest import events

    return events.handle_event(event, context)


@app.schedule("rate(5 minutes)", name="retry_callbacks")
def retry_callbacks(event):
    """Every 5 minutes: send the callbacks that are due (retries, or ones not sent yet)."""
    return cal_requests.retry_callbacks(event.context)
