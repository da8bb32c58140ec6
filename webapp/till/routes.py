from webapp.auth.session import staff_required
from webapp.pages import render_page

from . import bp


@bp.route("/till")
@staff_required
def show():
    return render_page("till/till.html")
