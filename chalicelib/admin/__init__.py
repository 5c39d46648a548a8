"""Operators steer what is served: retire/restore/prefer fits, validity epochs, the audit trail.

``auth``     who is calling (the IAM principal in prod, 'local' from 127.0.0.1 on the local stack)
``actions``  the admin routes: parameters in, JSON out (the writes are in ``db.steering``)
``__main__`` the engineers' command-line client, signing its calls with SigV4
"""
