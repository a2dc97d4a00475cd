"""Phase-aware load balancing under the site's fuses (issue 14).

``model`` holds the values, ``allocate`` the fair targets, ``plan`` the guarantee that decides
which writes may go out, ``learn`` what each connector's car draws, ``site`` the validated
site description.  All of them are pure; the runtime does the I/O.
"""
