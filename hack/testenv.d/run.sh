cmd_up(){ :; }; cmd_down(){ :; }; cmd_status(){ :; }
