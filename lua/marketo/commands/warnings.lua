--- marketo-bulk warnings: Marketo's warnings file of one batch (see failures).
return require("marketo.commands.failures").for_what("warnings")
