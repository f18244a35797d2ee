"""The Lab's uploads on the page: check each uploaded file, keep it in the upload store, and
return the Config fields that name it (or say on the page what is wrong)."""

from __future__ import annotations

from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import RerunException, StopException

from landscape.files import uploads

MAX_ROWS = uploads.MAX_ROWS
PASS_THROUGH = (KeyboardInterrupt, SystemExit, RerunException, StopException)


def upload_fields(
    model_file: Any, data_file: Any, model: str, dataset: str
) -> dict[str, str] | None:
    """The Lab ``Config`` fields naming the uploaded files (``model_upload``, ``data_upload``,
    ``data_name``), or None when a wanted file is missing or refused (said on the page)."""
    fields: dict[str, str] = {}
    ready = True
    for label, file, kind in (("model", model_file, "model"), ("data", data_file, "dataset")):
        wanted = model == "upload" if kind == "model" else dataset == "upload"
        if not wanted:
            continue
        if file is None:
            st.info(f"Upload a {label} file above (Model, data and training) to continue.")
            ready = False
            continue
        content = file.getvalue()
        try:
            if kind == "model":
                uploads.load_model(content)
            else:
                uploads.load_table(content, file.name)
        except ValueError as error:
            st.error(f"{file.name}: {error}")
            ready = False
            continue
        except PASS_THROUGH:
            raise
        except BaseException as error:  # noqa: BLE001 - an upload must never reach a traceback
            st.error(f"{file.name} could not be read ({type(error).__name__}: {error}).")
            ready = False
            continue
        digest = uploads.store(content)
        if kind == "model":
            fields["model_upload"] = digest
        else:
            fields.update(data_upload=digest, data_name=file.name)
    return fields if ready else None
