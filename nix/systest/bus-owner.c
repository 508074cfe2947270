/* Test helper for nix/systest: owns a well-known name on the system bus and answers every
 * method call addressed to it with an empty reply, so the D-Bus policy the NixOS module
 * installs can be exercised (who may own the name, who may call it) without the real daemon.
 *   bus-owner NAME   -> exit 0 once NAME is owned and "owned NAME" printed; serves until killed
 *                       exit 3 if owning NAME is denied
 * Build: cc -o bus-owner bus-owner.c $(pkg-config --cflags --libs dbus-1) */
#include <dbus/dbus.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s NAME\n", argv[0]);
        return 2;
    }
    DBusError err;
    dbus_error_init(&err);
    DBusConnection *c = dbus_bus_get(DBUS_BUS_SYSTEM, &err);
    if (c == NULL) {
        fprintf(stderr, "cannot connect to the system bus: %s\n", err.message);
        return 1;
    }
    int r = dbus_bus_request_name(c, argv[1], DBUS_NAME_FLAG_DO_NOT_QUEUE, &err);
    if (dbus_error_is_set(&err)) {
        fprintf(stderr, "cannot own %s: %s: %s\n", argv[1], err.name, err.message);
        return strcmp(err.name, DBUS_ERROR_ACCESS_DENIED) == 0 ? 3 : 1;
    }
    if (r != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
        fprintf(stderr, "cannot own %s (reply %d)\n", argv[1], r);
        return 1;
    }
    printf("owned %s\n", argv[1]);
    fflush(stdout);
    while (dbus_connection_read_write(c, -1)) {
        DBusMessage *m;
        while ((m = dbus_connection_pop_message(c)) != NULL) {
            if (dbus_message_get_type(m) == DBUS_MESSAGE_TYPE_METHOD_CALL) {
                DBusMessage *reply = dbus_message_new_method_return(m);
                if (reply != NULL) {
                    dbus_connection_send(c, reply, NULL);
                    dbus_message_unref(reply);
                }
            }
            dbus_message_unref(m);
        }
    }
    return 0;
}
