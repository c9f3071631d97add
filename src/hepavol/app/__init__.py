"""The radiologist's review app (``hepavol study serve``): a local web server and its browser page.

- :mod:`hepavol.app.server`: routes, access token, session cookie, CSRF (calls the study's operations only);
- :mod:`hepavol.app.volumes`: scans in memory on the display grid (slices, overlays, RECIST lines);
- :mod:`hepavol.app.display`: the stored grid seen as axial slices in radiological convention;
- ``static/``: the page (plain JavaScript and a 2D canvas; nothing loaded from the network).
"""
